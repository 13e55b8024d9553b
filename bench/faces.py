"""Face detectors on real photos: the old Haar cascade against dlib's trained models.

    .venv/bin/python bench/faces.py [--placements 6] [--lfw 100] [--negatives 1000]
                                    [--detectors haar,hog,hog+cnn,cnn] [--model-dir DIR]

Frames are 320x240 (the product's ``face_frame_width``), built from real photographs that ship
in pinned packages: scikit-image's astronaut (Eileen Collins, frontal) and cameraman (a man
turned ~45 degrees), and the 100 LFW faces of ``skimage/data/lfw_subset.npy`` (25x25 px crops of
100 different people: the low-resolution case). Each face is pasted ``--placements`` times at a
random size and place over a random crop of a face-free photo (clutter, as in a room), then
made hard:

- plain; dark (x0.25 brightness plus sensor noise); small (face 28-40 px wide); covered (a hand
  over the lower third of the face); JPEG at quality 30 (a poor webcam stream).

Recall: share of face frames where a reported box's centre falls inside the true face box.
False faces: boxes reported on ``--negatives`` frames cut at random sizes and places from
face-free photos (scikit-image's coffee, chelsea the cat, rocket, horse, coins, page, text,
moon, hubble..., scikit-learn's china and flower, LFW's 100 non-face patches), per 1,000
frames. ms/frame is wall time on this machine (shared: noisy).

Detectors: ``haar`` is what the product used before (OpenCV's frontal cascade,
min_neighbors=8, equalised histogram); ``hog`` and ``hog+cnn`` are dlib's (``face_model``; the
product runs hog+cnn); ``cnn`` (slow) runs dlib's CNN on every frame.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from interviewer.proctoring.face_model import load_face_model

W, H = 320, 240
Box = tuple[int, int, int, int]
# True face boxes (x, y, w, h) in the original photos, from dlib's landmarks checked by eye.
FACES = {"astronaut.png": (179, 83, 88, 88), "camera.png": (180, 116, 80, 80)}
EMPTY = [
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "horse.png",
    "coins.png",
    "page.png",
    "text.png",
    "moon.png",
    "hubble_deep_field.jpg",
    "brick.png",
    "grass.png",
    "gravel.png",
    "ihc.png",
    "motorcycle_left.png",
    "retina.jpg",
    "clock_motion.png",
    "color.png",
    "cell.png",
    "microaneurysms.png",
    "phantom.png",
    "logo.png",
]
VARIANTS = ("plain", "dark", "small", "covered", "jpeg30")


def data_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise SystemExit(f"{package} is not installed (a test dependency): run `make test`")
    return Path(spec.origin).parent


def read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return image


def face_free() -> list[np.ndarray]:
    sk = data_dir("skimage") / "data"
    images = [read(sk / name) for name in EMPTY]
    images += [
        read(data_dir("sklearn") / "datasets" / "images" / n) for n in ("china.jpg", "flower.jpg")
    ]
    lfw = np.load(sk / "lfw_subset.npy")  # 200 x 25 x 25 in [0, 1]: 100 faces, then 100 not
    images += [cv2.cvtColor((p * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR) for p in lfw[100:]]
    return images


def faces(lfw_people: int) -> list[tuple[str, np.ndarray, Box]]:
    sk = data_dir("skimage") / "data"
    out = [(name.split(".")[0], read(sk / name), box) for name, box in FACES.items()]
    lfw = np.load(sk / "lfw_subset.npy")
    for i, patch in enumerate(lfw[: min(lfw_people, 100)]):
        out.append(
            (
                f"lfw{i}",
                cv2.cvtColor((patch * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR),
                (0, 0, 25, 25),
            )
        )
    return out


def background(rng: np.random.Generator, empties: list[np.ndarray]) -> np.ndarray:
    """A random crop of a face-free photo, scaled to fill the frame."""
    image = empties[rng.integers(len(empties))]
    h, w = image.shape[:2]
    cw = int(rng.uniform(0.3, 1.0) * w)
    ch = min(h, int(cw * H / W))
    x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
    return cv2.resize(image[y : y + ch, x : x + cw], (W, H), interpolation=cv2.INTER_AREA)


def paste(
    rng: np.random.Generator, frame: np.ndarray, photo: np.ndarray, box: Box, face_px: int
) -> tuple[np.ndarray, Box]:
    """Paste ``photo`` scaled so its face is ``face_px`` wide, at a random place; the new box.

    A whole photo (astronaut, cameraman) keeps its own surroundings around the face (cropped to
    fit); an LFW patch is the face alone, as in the data set.
    """
    scale = face_px / box[2]
    photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    fx, fy, fw, fh = (round(v * scale) for v in box)
    ph, pw = photo.shape[:2]
    # Window of the photo that fits the frame and contains the face.
    x0 = int(np.clip(fx + fw // 2 - W // 2 + rng.integers(-W // 4, W // 4 + 1), 0, max(pw - W, 0)))
    y0 = int(np.clip(fy + fh // 2 - H // 2 + rng.integers(-H // 5, H // 5 + 1), 0, max(ph - H, 0)))
    part = photo[y0 : y0 + H, x0 : x0 + W]
    out = frame.copy()
    oy = rng.integers(0, H - part.shape[0] + 1)
    ox = rng.integers(0, W - part.shape[1] + 1)
    out[oy : oy + part.shape[0], ox : ox + part.shape[1]] = part
    return out, (int(ox + fx - x0), int(oy + fy - y0), fw, fh)


def harden(rng: np.random.Generator, frame: np.ndarray, box: Box, variant: str) -> np.ndarray:
    if variant == "dark":
        noisy = frame.astype(float) * 0.25 + rng.normal(0, 2.5, frame.shape)
        return np.clip(noisy, 0, 255).astype(np.uint8)
    if variant == "covered":
        x, y, w, h = box
        out = frame.copy()
        out[y + 2 * h // 3 : y + h + h // 10, max(x - w // 10, 0) : x + w + w // 10] = (40, 60, 90)
        return out
    if variant == "jpeg30":
        ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 30])
        assert ok
        return cv2.imdecode(data, cv2.IMREAD_COLOR)
    return frame


@dataclass
class Sample:
    group: str  # "astronaut", "cameraman (turned)", "LFW 100 people (25 px)"
    variant: str
    frame: np.ndarray
    box: Box


def face_frames(placements: int, lfw_people: int, seed: int = 0) -> Iterator[Sample]:
    rng = np.random.default_rng(seed)
    empties = face_free()
    groups = {"astronaut": "astronaut", "camera": "cameraman (turned)"}
    for name, photo, box in faces(lfw_people):
        group = groups.get(name, "LFW, 100 people (25 px source)")
        count = placements if name in groups else 1
        for _ in range(count):
            for variant in VARIANTS:
                px = int(rng.integers(28, 41)) if variant == "small" else int(rng.integers(60, 111))
                frame, where = paste(rng, background(rng, empties), photo, box, px)
                yield Sample(group, variant, harden(rng, frame, where, variant), where)


def empty_frames(count: int, seed: int = 1) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    empties = face_free()
    for _ in range(count):
        frame = background(rng, empties)
        yield harden(rng, frame, (0, 0, 1, 1), str(rng.choice(["plain", "dark", "jpeg30"])))


def haar_detector() -> Callable[[np.ndarray], list[Box]]:
    """The product's detector before dlib: OpenCV's frontal cascade as it was configured."""
    cascade = cv2.CascadeClassifier(
        str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml")
    )
    if cascade.empty():
        raise SystemExit("this OpenCV has no Haar cascade (OpenCV 5 dropped it): use 4.x")

    def detect(frame: np.ndarray) -> list[Box]:
        gray = cv2.equalizeHist(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
        found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=8, minSize=(24, 24))
        return [tuple(int(v) for v in b) for b in found]  # type: ignore[misc]

    return detect


def hit(boxes: list[Box], truth: Box) -> bool:
    tx, ty, tw, th = truth
    return any(tx <= x + w / 2 <= tx + tw and ty <= y + h / 2 <= ty + th for x, y, w, h in boxes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--placements", type=int, default=6, help="per photo and variant")
    parser.add_argument("--negatives", type=int, default=1000, help="face-free frames")
    parser.add_argument("--lfw", type=int, default=100, help="LFW people to use (<= 100)")
    parser.add_argument(
        "--detectors",
        default="haar,hog,hog+cnn",
        help="comma-separated, of haar, hog, hog+cnn, cnn (dlib's CNN on every frame: slow)",
    )
    parser.add_argument("--model-dir", type=Path, default=None)
    args = parser.parse_args()

    detectors: dict[str, Callable[[np.ndarray], list[Box]]] = {}
    for name in args.detectors.split(","):
        if name == "haar":
            detectors[name] = haar_detector()
        else:
            detectors[name] = load_face_model(args.model_dir, mode=name).detect
    samples = list(face_frames(args.placements, args.lfw))
    empties = list(empty_frames(args.negatives))
    rows: dict[tuple[str, str], dict[str, list[int]]] = {}
    false_faces: dict[str, int] = {}
    spent: dict[str, float] = {}
    for name, detect in detectors.items():
        started = time.perf_counter()
        for s in samples:
            rows.setdefault((s.group, s.variant), {}).setdefault(name, []).append(
                hit(detect(s.frame), s.box)
            )
        false_faces[name] = sum(len(detect(frame)) for frame in empties)
        spent[name] = (time.perf_counter() - started) / (len(samples) + len(empties)) * 1000

    names = list(detectors)
    print(f"{len(samples)} face frames, {len(empties)} face-free frames, {W}x{H}")
    print("| faces | variant | frames | " + " | ".join(f"{n} recall" for n in names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for (group, variant), per in rows.items():
        frames = len(per[names[0]])
        cells = " | ".join(f"{100 * sum(per[n]) / frames:.0f} %" for n in names)
        print(f"| {group} | {variant} | {frames} | {cells} |")
    for n in names:
        total = [h for (_g, _v), per in rows.items() for h in per[n]]
        print(
            f"{n}: recall {100 * sum(total) / len(total):.1f} % of {len(total)} face frames; "
            f"{1000 * false_faces[n] / max(len(empties), 1):.1f} false faces per 1,000 face-free "
            f"frames ({false_faces[n]} in {len(empties)}); {spent[n]:.0f} ms/frame"
        )


if __name__ == "__main__":
    main()
