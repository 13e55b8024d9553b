"""Faces in the camera recording: nobody there, several people, the applicant looking away for
long, or a different person in front of the camera than at the start.

Frames are sampled on the server from what was recorded (never from anything the page claims):
ffmpeg decodes the recording (webm/mp4/y4m; a MediaRecorder "part" is its chunks concatenated
in order, fed through a pipe), its ``fps`` filter picks ~1 frame per second by timestamp, and
each frame is scaled into a fixed 4:3 box so the detector sees one size whatever the camera.

The models are dlib's (``face_model``): a face detector, 5 landmarks per face (head turn) and a
128-d embedding per face (who it is). "The applicant" is the mean embedding of the first few
one-face frames; a later one-face frame farther than ``face_match_distance`` from it is someone
else. A single odd frame is noise, so every signal needs a stretch of frames (one-frame gaps
inside bridged, except for "several faces": a false second face is a one-frame blip that must
not glue two real episodes together). These are prompts for a person to look at the
thumbnail, not findings.

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

from interviewer.errors import MissingSystemPackage
from interviewer.priority import yield_to_live
from interviewer.proctoring.events import severity_of
from interviewer.proctoring.face_model import Box, Face
from interviewer.proctoring.thresholds import ProctoringThresholds

KINDS = ("no_face", "multiple_faces", "looking_away", "different_person")
BRIDGE_FRAMES = {"no_face": 1, "multiple_faces": 0, "looking_away": 1, "different_person": 1}


class FaceDetector(Protocol):
    def faces(self, frame_bgr: np.ndarray, *, embed: bool = False) -> list[Face]: ...


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
    """A stretch of sampled frames showing one of KINDS."""

    kind: str
    start_s: float
    end_s: float  # one sampling interval after the last frame of the stretch
    frames: int  # sampled frames in the stretch that showed the condition
    max_faces: int
    # The strongest reading in the stretch: degrees of head turn (looking_away), embedding
    # distance from the applicant's face (different_person); None for the others.
    peak: float | None = None
    thumbnail: np.ndarray | None = field(default=None, repr=False)  # BGR, boxes drawn
    offsets: list[float] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return round(self.end_s - self.start_s, 3)

    @property
    def amount(self) -> float:
        """What the severity rule measures: frames for "several faces", seconds otherwise."""
        return self.frames if self.kind == "multiple_faces" else self.duration_s


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


@dataclass
class _Reading:
    """What one sampled frame showed, per kind: the flag and its strength."""

    faces: int
    yaw: float | None = None
    distance: float | None = None

    def flags(self, t: ProctoringThresholds) -> dict[str, bool]:
        return {
            "no_face": self.faces == 0,
            "multiple_faces": self.faces > 1,
            "looking_away": self.yaw is not None and self.yaw >= t.looking_away_yaw_deg,
            "different_person": self.distance is not None and self.distance > t.face_match_distance,
        }


@dataclass
class CameraResult:
    episodes: list[Episode]
    frames: int
    # The applicant's face (mean embedding of the first one-face frames): pass it to the next
    # part of the same interview so a stand-in after a page reload is still compared with them.
    reference: np.ndarray | None


def camera_episodes(
    source: Path | Sequence[Path],
    detector: FaceDetector,
    thresholds: ProctoringThresholds,
    *,
    reference: np.ndarray | None = None,
) -> CameraResult:
    """Episodes long enough to record (per the thresholds), frames sampled, the reference face.

    Frames are not kept: only each candidate stretch's most telling frame (its first frame, or
    for "several faces" the one with most faces) survives as a thumbnail.
    """
    t = thresholds
    fps = t.face_sample_fps
    readings: list[_Reading] = []
    kept: dict[tuple[str, int], tuple[np.ndarray, list[Box]]] = {}
    prev = dict.fromkeys(KINDS, False)
    most_faces = 0
    enrolling: list[np.ndarray] = []
    for index, (_offset, frame) in enumerate(
        sample_frames(source, fps=fps, width=t.face_frame_width)
    ):
        yield_to_live()  # a worker process pauses here while an interview is live
        found = detector.faces(frame, embed=True)
        reading = _Reading(len(found))
        if len(found) == 1:
            face = found[0]
            reading.yaw = face.yaw_deg
            if reference is None and face.embedding is not None:
                enrolling.append(face.embedding)
                if len(enrolling) >= t.face_reference_frames:
                    reference = np.mean(enrolling, axis=0)
            elif reference is not None:
                reading.distance = face.distance(reference)
        readings.append(reading)
        flags = reading.flags(t)
        boxes = [f.box for f in found]
        for kind in KINDS:
            starts = flags[kind] and not prev[kind]
            if kind == "multiple_faces" and flags[kind]:
                if starts or len(found) > most_faces:
                    kept[(kind, index)] = (frame, boxes)
                    most_faces = len(found)
            elif starts:
                kept[(kind, index)] = (frame, boxes)
        prev = flags
    episodes = [e for kind in KINDS for e in _episodes_of(kind, readings, kept, t) if e is not None]
    episodes.sort(key=lambda e: (e.start_s, KINDS.index(e.kind)))
    return CameraResult(episodes, len(readings), reference)


def _episodes_of(
    kind: str,
    readings: list[_Reading],
    kept: dict[tuple[str, int], tuple[np.ndarray, list[Box]]],
    t: ProctoringThresholds,
) -> Iterator[Episode | None]:
    fps = t.face_sample_fps
    flags = [r.flags(t)[kind] for r in readings]
    for first, last in runs(flags, BRIDGE_FRAMES[kind]):
        hits = [i for i in range(first, last + 1) if flags[i]]
        with_thumb = [i for i in hits if (kind, i) in kept]
        if kind == "multiple_faces" and with_thumb:
            pick: int | None = max(with_thumb, key=lambda i: len(kept[(kind, i)][1]))
        else:
            pick = with_thumb[0] if with_thumb else None
        values = [
            v
            for v in (
                readings[i].yaw if kind == "looking_away" else readings[i].distance for i in hits
            )
            if v is not None
        ]
        episode = Episode(
            kind=kind,
            start_s=round(first / fps, 3),
            end_s=round((last + 1) / fps, 3),
            frames=len(hits),
            max_faces=max(readings[i].faces for i in hits),
            peak=round(max(values), 3) if values else None,
            thumbnail=_annotated(*kept[(kind, pick)]) if pick is not None else None,
            offsets=[round(i / fps, 3) for i in hits],
        )
        yield episode if severity_of(kind, episode.amount, t) is not None else None
