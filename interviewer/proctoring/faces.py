"""Faces in the camera recording: nobody there for a while, or more than one person.

Frames are sampled on the server from what was recorded (never from anything the page claims):
ffmpeg decodes the recording (webm/mp4/y4m; a MediaRecorder "part" is its chunks concatenated
in order, fed through a pipe), its ``fps`` filter picks ~1 frame per second by timestamp, and
each frame is scaled into a fixed 4:3 box so the detector sees one size whatever the camera.

The detector is OpenCV's frontal-face Haar cascade (``cv2.data.haarcascades``): no extra
weights, a few tens of ms per 320 px frame. It misses faces turned away or badly lit and now
and then finds a face in a pattern, so "no face" needs several seconds in a row (one-frame
blips inside bridged) and "several faces" several consecutive frames; ``min_neighbors=8`` (not
OpenCV's 3) trades a few misses for far fewer invented faces. These are prompts for a person
to look at the thumbnail, not findings.

Plain blocking functions: run them in an executor or a worker process, never on the event loop.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from interviewer.errors import MissingSystemPackage, UserError
from interviewer.priority import yield_to_live
from interviewer.proctoring.events import severity_of
from interviewer.proctoring.thresholds import ProctoringThresholds

Box = tuple[int, int, int, int]  # x, y, width, height in the scaled frame
CASCADE = "haarcascade_frontalface_default.xml"
# A "no face" run survives one frame with a face inside it (a false face on a bookshelf); a
# "several faces" run does not (a false second face is a one-frame blip: it must not glue two
# real episodes or an episode and a blip together).
BRIDGE_FRAMES = {"no_face": 1, "multiple_faces": 0}


class FaceDetectorUnavailable(UserError):
    """This OpenCV build has no usable face detector."""


class FaceDetector(Protocol):
    def detect(self, frame_bgr: np.ndarray) -> list[Box]: ...


class HaarFaceDetector:
    """OpenCV's frontal-face cascade; ``min_neighbors`` trades misses for false faces."""

    def __init__(self, cascade_path: Path, *, min_neighbors: int = 8, min_size: int = 24) -> None:
        import cv2

        self._cascade = cv2.CascadeClassifier(str(cascade_path))
        if self._cascade.empty():
            raise FaceDetectorUnavailable(f"{cascade_path}: not a readable OpenCV cascade")
        self._lock = threading.Lock()  # one CascadeClassifier is not safe across threads
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    def detect(self, frame_bgr: np.ndarray) -> list[Box]:
        import cv2

        gray = cv2.equalizeHist(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY))
        with self._lock:
            found = self._cascade.detectMultiScale(
                gray,
                scaleFactor=1.1,
                minNeighbors=self.min_neighbors,
                minSize=(self.min_size, self.min_size),
            )
        return [tuple(int(v) for v in box) for box in found]  # type: ignore[misc]


def load_face_detector() -> FaceDetector:
    """The Haar detector shipped in the opencv-python-headless wheel.

    OpenCV 5 moved ``CascadeClassifier`` and the cascade files out of the main wheel; this
    says so in one line instead of failing deep inside an analysis.
    """
    import cv2

    fix = "install opencv-python-headless 4.x (`pip install 'opencv-python-headless<5'`)"
    if not hasattr(cv2, "CascadeClassifier"):
        raise FaceDetectorUnavailable(
            f"OpenCV {cv2.__version__} has no CascadeClassifier (OpenCV 5 moved it out): {fix}"
        )
    folder = Path(getattr(getattr(cv2, "data", None), "haarcascades", "") or ".")
    path = folder / CASCADE
    if not path.is_file():
        raise FaceDetectorUnavailable(f"{path}: missing from OpenCV {cv2.__version__}: {fix}")
    return HaarFaceDetector(path)


# --- sampling frames ------------------------------------------------------------------------------


def frame_size(width: int) -> tuple[int, int]:
    """The fixed 4:3 box frames are scaled (and letterboxed) into; even sizes for ffmpeg."""
    width -= width % 2
    height = round(width * 3 / 4)
    return width, height - height % 2


def sample_frames(
    source: Path | Sequence[Path], *, fps: float = 1.0, width: int = 320
) -> Iterator[tuple[float, np.ndarray]]:
    """(seconds from the recording's start, BGR frame) about every ``1/fps`` seconds.

    ``source`` is one file, or the chunks of one recording in order (concatenated through a
    pipe, the way MediaRecorder's timeslices form one stream). A damaged tail ends the frames
    early instead of raising: what decoded is still evidence.
    """
    if shutil.which("ffmpeg") is None:
        raise MissingSystemPackage("ffmpeg is not installed: run `sudo apt-get install ffmpeg`")
    chunks = [Path(source)] if isinstance(source, (str, Path)) else [Path(p) for p in source]
    if not chunks:
        return
    w, h = frame_size(width)
    vf = (
        f"fps={fps},scale={w}:{h}:force_original_aspect_ratio=decrease,"
        f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2"
    )
    single = len(chunks) == 1
    source_args = ["-nostdin", "-i", str(chunks[0])] if single else ["-i", "pipe:0"]
    command = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", *source_args,
        "-an", "-vf", vf, "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL if single else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    feeder = None
    if not single:
        feeder = threading.Thread(target=_feed, args=(process, chunks), daemon=True)
        feeder.start()
    size = w * h * 3
    index = 0
    try:
        assert process.stdout is not None
        while True:
            data = process.stdout.read(size)
            if len(data) < size:
                break
            yield index / fps, np.frombuffer(data, dtype=np.uint8).reshape(h, w, 3).copy()
            index += 1
    finally:
        process.kill()
        process.wait()
        if feeder is not None:
            feeder.join(timeout=5)


def _feed(process: subprocess.Popen[bytes], chunks: list[Path]) -> None:
    assert process.stdin is not None
    try:
        for chunk in chunks:
            with chunk.open("rb") as f:
                shutil.copyfileobj(f, process.stdin, 1 << 16)
    except (BrokenPipeError, OSError):
        pass  # ffmpeg stopped early (damaged data or killed): the reader sees the end
    finally:
        with contextlib.suppress(OSError):
            process.stdin.close()


# --- from detections to episodes ---------------------------------------------------------------


@dataclass
class Episode:
    """A stretch of sampled frames with no face or with several faces."""

    kind: str  # "no_face" | "multiple_faces"
    start_s: float
    end_s: float  # one sampling interval after the last frame of the stretch
    frames: int  # sampled frames in the stretch that showed the condition
    max_faces: int
    thumbnail: np.ndarray | None = field(default=None, repr=False)  # BGR, boxes drawn
    offsets: list[float] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return round(self.end_s - self.start_s, 3)

    @property
    def amount(self) -> float:
        """What the severity rule measures: seconds for "no face", frames for "several"."""
        return self.duration_s if self.kind == "no_face" else self.frames


def runs(flags: Sequence[bool], bridge: int = 1) -> list[tuple[int, int]]:
    """[first, last] index pairs of True runs, joining runs split by <= ``bridge`` Falses."""
    found: list[list[int]] = []
    for i, flag in enumerate(flags):
        if not flag:
            continue
        if found and i - found[-1][1] - 1 <= bridge:
            found[-1][1] = i
        else:
            found.append([i, i])
    return [(a, b) for a, b in found]


def _annotated(frame: np.ndarray, boxes: list[Box]) -> np.ndarray:
    import cv2

    out = frame.copy()
    for x, y, bw, bh in boxes:
        cv2.rectangle(out, (x, y), (x + bw, y + bh), (0, 0, 255), 2)
    return out


def camera_episodes(
    source: Path | Sequence[Path],
    detector: FaceDetector,
    thresholds: ProctoringThresholds,
) -> tuple[list[Episode], int]:
    """Episodes long enough to record (per the thresholds), and how many frames were sampled.

    Frames are not kept: only each candidate stretch's most telling frame (its first frame for
    "no face", the one with most faces otherwise) survives as a thumbnail.
    """
    fps = thresholds.face_sample_fps
    counts: list[int] = []
    kept: dict[int, tuple[np.ndarray, list[Box]]] = {}
    prev_state = None
    best_multi: tuple[int, int] | None = None  # (faces, index) within the current multi stretch
    for index, (_offset, frame) in enumerate(
        sample_frames(source, fps=fps, width=thresholds.face_frame_width)
    ):
        yield_to_live()  # a worker process pauses here while an interview is live
        boxes = detector.detect(frame)
        counts.append(len(boxes))
        state = "none" if not boxes else "many" if len(boxes) > 1 else "one"
        if state == "none" and prev_state != "none":
            kept[index] = (frame, boxes)
        if state == "many" and (
            best_multi is None or len(boxes) > best_multi[0] or prev_state != "many"
        ):
            kept[index] = (frame, boxes)
            best_multi = (len(boxes), index)
        prev_state = state
    episodes: list[Episode] = []
    for kind, flags in (
        ("no_face", [c == 0 for c in counts]),
        ("multiple_faces", [c > 1 for c in counts]),
    ):
        for first, last in runs(flags, BRIDGE_FRAMES[kind]):
            hits = [i for i in range(first, last + 1) if flags[i]]
            if kind == "no_face":
                pick = next((i for i in hits if i in kept), None)
            else:
                with_thumb = [i for i in hits if i in kept]
                pick = max(with_thumb, key=lambda i: len(kept[i][1])) if with_thumb else None
            thumb = _annotated(*kept[pick]) if pick is not None else None
            episode = Episode(
                kind=kind,
                start_s=round(first / fps, 3),
                end_s=round((last + 1) / fps, 3),
                frames=len(hits),
                max_faces=max(counts[i] for i in hits),
                thumbnail=thumb,
                offsets=[round(i / fps, 3) for i in hits],
            )
            if severity_of(kind, episode.amount, thresholds) is not None:
                episodes.append(episode)
    episodes.sort(key=lambda e: e.start_s)
    return episodes, len(counts)
