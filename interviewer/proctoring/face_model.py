"""The trained face models behind the camera signals: dlib's detectors, 5-point landmarks and
128-d face embeddings, loaded offline from the model directory (`interviewer models install`).

Why dlib: its models ship in a PyPI package (face_recognition_models, CC0, sha256-pinned in
``weights.catalog``) and run on the CPU through a prebuilt wheel (dlib-bin, Boost licence), with
no download and no compiler. Detection is the HOG + linear SVM detector (tens of ms per 320 px
frame, frontal and moderately turned faces); where it finds nobody, the MMOD CNN detector looks
again (far better on turned, dark or partly covered faces, but ~10x slower), so the slow model
only runs on the frames that would otherwise become "nobody there". bench/faces.py measures
both against the old Haar cascade.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from interviewer.errors import ModelError
from interviewer.weights import faces_dir

Box = tuple[int, int, int, int]  # x, y, width, height in the frame
DETECTOR = "mmod_human_face_detector.dat"
LANDMARKS = "shape_predictor_5_face_landmarks.dat"
EMBEDDER = "dlib_face_recognition_resnet_model_v1.dat"
# How far the base of the nose sits in front of the eye corners, as a fraction of the distance
# between the two eye centres (~20 mm over ~62 mm on an adult face): a head turned by ``yaw``
# moves the nose sideways from the eyes' midpoint by NOSE_DEPTH * tan(yaw) eye distances.
NOSE_DEPTH = 0.32
# dlib's embedder was trained so that two photos of one person are closer than 0.6 (99.38% on
# LFW's pairs); distances are Euclidean between 128-d descriptors.
SAME_PERSON_DISTANCE = 0.6


@dataclass(frozen=True)
class Face:
    box: Box
    yaw_deg: float  # estimated head turn left/right from the landmarks (0 = facing the camera)
    embedding: np.ndarray | None = None  # 128-d, when asked for

    def distance(self, reference: np.ndarray) -> float | None:
        if self.embedding is None:
            return None
        return float(np.linalg.norm(self.embedding - reference))


def yaw_from_landmarks(points: np.ndarray) -> float:
    """Head turn in degrees from dlib's 5 points (two corners of each eye, base of the nose).

    Only the sideways offset of the nose from the eyes' midpoint along the eye line is used, so
    a tilted head (roll) does not read as a turn. Pitch (looking down) is not estimated: the
    5 points do not separate it from face shape well enough to flag anyone.
    """
    eye_a = points[0:2].mean(axis=0)
    eye_b = points[2:4].mean(axis=0)
    span = float(np.linalg.norm(eye_a - eye_b))
    if span < 1e-6:
        return 90.0
    axis = (eye_a - eye_b) / span
    offset = float(np.dot(points[4] - (eye_a + eye_b) / 2, axis)) / span
    return round(math.degrees(math.atan(abs(offset) / NOSE_DEPTH)), 1)


MODES = ("hog+cnn", "hog", "cnn")


class DlibFaces:
    """Faces in a BGR frame: boxes, head turn and (on request) an identity embedding.

    ``mode``: "hog+cnn" (HOG, then the CNN on frames where HOG found nobody), "hog" alone
    (fast, misses turned faces) or "cnn" on every frame (finds a turned second person beside a
    frontal one, which "hog+cnn" misses; ~10x slower). ``upsample``: how many times dlib
    doubles the frame before looking; 1 finds faces down to ~40 px in a 320 px frame.
    """

    def __init__(self, folder: Path, *, mode: str = "hog+cnn", upsample: int = 1) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown face detector mode {mode!r}; expected one of {MODES}")
        import dlib  # lazy: a compiled extension only the camera analysis needs

        missing = [n for n in (DETECTOR, LANDMARKS, EMBEDDER) if not (folder / n).is_file()]
        if missing:
            raise ModelError(
                f"{folder}: missing {', '.join(missing)}: run `interviewer models install`"
            )
        self._hog = dlib.get_frontal_face_detector()
        self._cnn = dlib.cnn_face_detection_model_v1(str(folder / DETECTOR))
        self._points = dlib.shape_predictor(str(folder / LANDMARKS))
        self._embedder = dlib.face_recognition_model_v1(str(folder / EMBEDDER))
        self._rectangle = dlib.rectangle
        self._lock = threading.Lock()  # dlib's models keep per-call state: one call at a time
        self.upsample = upsample
        self.mode = mode

    def _rects(self, rgb: np.ndarray) -> list[object]:
        found = list(self._hog(rgb, self.upsample)) if self.mode != "cnn" else []
        if not found and self.mode != "hog":
            found = [d.rect for d in self._cnn(rgb, self.upsample)]
        return found

    def faces(self, frame_bgr: np.ndarray, *, embed: bool = False) -> list[Face]:
        rgb = np.ascontiguousarray(frame_bgr[:, :, ::-1])
        h, w = rgb.shape[:2]
        out = []
        with self._lock:
            for rect in self._rects(rgb):
                shape = self._points(rgb, rect)
                points = np.array([(p.x, p.y) for p in shape.parts()], dtype=float)
                embedding = None
                if embed:
                    embedding = np.array(self._embedder.compute_face_descriptor(rgb, shape))
                x0, y0 = max(rect.left(), 0), max(rect.top(), 0)  # type: ignore[attr-defined]
                x1, y1 = min(rect.right(), w - 1), min(rect.bottom(), h - 1)  # type: ignore[attr-defined]
                box = (int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1))
                out.append(Face(box, yaw_from_landmarks(points), embedding))
        return out

    def detect(self, frame_bgr: np.ndarray) -> list[Box]:
        return [face.box for face in self.faces(frame_bgr)]


def load_face_model(
    model_dir: Path | None = None, *, mode: str = "hog+cnn", upsample: int = 1
) -> DlibFaces:
    """The installed dlib models; a ModelError (a UserError) naming the fix when they are not."""
    return DlibFaces(faces_dir(model_dir), mode=mode, upsample=upsample)
