"""Camera signals on real video: .y4m built from public-domain photos, encoded to WebM by ffmpeg
and split into MediaRecorder-like chunks, then sampled and run through OpenCV's face detector.

The photos are scikit-image's bundled data images (astronaut: Eileen Collins, NASA, public
domain; coffee: CC0), read as files so scikit-image itself is never imported. Both packages are
pinned test dependencies, so a missing photo or face detector fails the test rather than skip it.
"""

from __future__ import annotations

import importlib.util
import itertools
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from sqlalchemy import Engine

from interviewer.banks.model import Bank
from interviewer.proctoring import faces
from interviewer.proctoring.analyze import analyze_interview
from interviewer.proctoring.events import EventKind, Severity, severity_of, summary
from interviewer.proctoring.thresholds import ProctoringThresholds
from interviewer.store import repo
from interviewer.store.db import session_scope
from interviewer.store.recordings import Recordings

BANKS = Path(__file__).parent.parent / "question_banks"
W, H, FPS = 320, 240, 2
T = ProctoringThresholds()


def skimage_image(name: str) -> np.ndarray:
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        pytest.fail("scikit-image is not installed (a test dependency): run `make test`")
    image = cv2.imread(str(Path(spec.origin).parent / "data" / name))
    assert image is not None, name
    return image


@pytest.fixture(scope="module")
def detector() -> faces.FaceDetector:
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is not installed: run `make test`")
    try:
        return faces.load_face_detector()
    except faces.FaceDetectorUnavailable as err:
        pytest.fail(str(err))


def canvas(image: np.ndarray) -> np.ndarray:
    out = np.full((H, W, 3), 128, np.uint8)
    h, w = image.shape[:2]
    scale = min(W / w, H / h)
    image = cv2.resize(image, (int(w * scale) // 2 * 2, int(h * scale) // 2 * 2))
    h, w = image.shape[:2]
    y, x = (H - h) // 2, (W - w) // 2
    out[y : y + h, x : x + w] = image
    return out


@pytest.fixture(scope="module")
def scenes() -> dict[str, np.ndarray]:
    astronaut = skimage_image("astronaut.png")
    crop = astronaut[20:270, 150:350]
    return {
        "one": canvas(astronaut[0:300, 100:400]),
        "two": canvas(np.hstack([crop, cv2.flip(crop, 1)])),  # two people side by side
        "none": canvas(skimage_image("coffee.png")),  # the applicant walked away
    }


def write_y4m(path: Path, frames: list[np.ndarray]) -> None:
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{W} H{H} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            out.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())


def video(
    tmp_path: Path, plan: list[tuple[str, float]], scenes: dict[str, np.ndarray]
) -> list[Path]:
    """Encode ``plan`` ([(scene, seconds)]) as WebM/VP8 and split it into 4 byte chunks."""
    rng = np.random.default_rng(0)
    frames = []
    for name, seconds in plan:
        for _ in range(int(seconds * FPS)):
            dx, dy = rng.integers(-4, 5, size=2)  # a person is never perfectly still
            shift = np.float32([[1, 0, dx], [0, 1, dy]])
            frame = cv2.warpAffine(scenes[name], shift, (W, H), borderMode=cv2.BORDER_REPLICATE)
            noise = rng.normal(0, 3, frame.shape)
            frames.append(np.clip(frame + noise, 0, 255).astype(np.uint8))
    y4m, webm = tmp_path / "camera.y4m", tmp_path / "camera.webm"
    write_y4m(y4m, frames)
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(y4m),
         "-c:v", "libvpx", "-b:v", "400k", "-deadline", "realtime", str(webm)],
        check=True,
    )  # fmt: skip
    data = webm.read_bytes()
    cuts = np.linspace(0, len(data), 5).astype(int)
    chunks = []
    for i, (a, b) in enumerate(itertools.pairwise(cuts)):
        chunk = tmp_path / f"{100_000 + i:08d}.webm"
        chunk.write_bytes(data[a:b])
        chunks.append(chunk)
    return chunks


def test_sampling_reads_chunked_webm_at_one_frame_per_second(
    tmp_path: Path, detector: faces.FaceDetector, scenes: dict[str, np.ndarray]
) -> None:
    chunks = video(tmp_path, [("one", 6)], scenes)
    frames = list(faces.sample_frames(chunks, fps=1.0, width=W))
    assert [t for t, _ in frames] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert frames[0][1].shape == (H, W, 3)
    assert len(detector.detect(frames[3][1])) == 1


def test_no_face_and_two_faces_become_episodes_with_thumbnails(
    tmp_path: Path, detector: faces.FaceDetector, scenes: dict[str, np.ndarray]
) -> None:
    plan = [("one", 6), ("none", 8), ("one", 4), ("two", 6), ("one", 4)]
    episodes, sampled = faces.camera_episodes(video(tmp_path, plan, scenes), detector, T)
    assert sampled == 28
    kinds = [(e.kind, e.start_s, e.end_s, e.frames) for e in episodes]
    assert kinds == [("no_face", 6.0, 14.0, 8), ("multiple_faces", 18.0, 24.0, 6)]
    no_face, several = episodes
    assert several.max_faces == 2
    assert no_face.thumbnail is not None and several.thumbnail is not None
    assert severity_of(EventKind.no_face, no_face.duration_s, T) is Severity.warning
    assert severity_of(EventKind.multiple_faces, several.frames, T) is Severity.high


def test_one_face_throughout_raises_nothing(
    tmp_path: Path, detector: faces.FaceDetector, scenes: dict[str, np.ndarray]
) -> None:
    episodes, sampled = faces.camera_episodes(video(tmp_path, [("one", 20)], scenes), detector, T)
    assert sampled == 20
    assert episodes == []


def test_runs_bridge_single_frame_blips() -> None:
    flags = [False, True, True, False, True, False, False, True]
    assert faces.runs(flags) == [(1, 4), (7, 7)]
    assert faces.runs(flags, bridge=0) == [(1, 2), (4, 4), (7, 7)]


def test_analyze_stores_camera_events_with_thumbnails_once(
    db_engine: Engine,
    tmp_path: Path,
    detector: faces.FaceDetector,
    scenes: dict[str, np.ndarray],
) -> None:
    bank = Bank.model_validate(yaml.safe_load((BANKS / "software-engineering.yaml").read_text()))
    with session_scope(db_engine) as s:
        version = repo.publish_bank(s, bank)
        opening = repo.create_opening(s, slug="cam", title="Cam", bank_version=version)
        applicant = repo.create_applicant(s, name="Ada", email="ada@example.org")
        interview_id = repo.create_interview(s, opening=opening, applicant=applicant).id
    recordings = Recordings(tmp_path / "recordings")
    plan = [("one", 3), ("none", 7), ("one", 3), ("two", 3), ("one", 2)]
    for chunk in video(tmp_path, plan, scenes):  # part 1, as the web layer names the chunks
        seq = int(chunk.stem)
        shutil.copy(chunk, recordings.media_chunk(interview_id, "camera", seq))

    for _ in range(2):
        report = analyze_interview(
            db_engine, interview_id, recordings=recordings, sources=("faces",)
        )
        assert report.frames_sampled == 18 and report.events == {"faces": 2}
    with session_scope(db_engine) as s:
        got = summary(s, interview_id)
    assert got.counts == {"multiple_faces": {"warning": 1}, "no_face": {"warning": 1}}
    for event in got.timeline:
        assert event["evidence"]["part"] == 1
        thumb = recordings.open_for_read(event["thumbnail"])
        assert thumb.parent.name == "proctoring" and thumb.stat().st_size < 20_000
    assert [e["evidence"]["offset_s"] for e in got.timeline] == [3.0, 13.0]
    assert len(list((recordings.root / str(interview_id) / "media" / "proctoring").iterdir())) == 2
