"""Camera signals on real photos and real video: .y4m built from public-domain photos, encoded
to WebM by ffmpeg and split into MediaRecorder-like chunks, then sampled and run through dlib's
trained face models (the installed `dlib-faces` weights).

The photos are scikit-image's bundled data images (astronaut: Eileen Collins, NASA, public
domain; camera: the "cameraman", a man turned towards his camera; coffee and chelsea, a cat:
CC0), read as files so scikit-image itself is never imported. Both packages are pinned test
dependencies, so a missing photo or model fails the test rather than skip it.
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

from interviewer import weights
from interviewer.banks.model import Bank
from interviewer.errors import ModelError
from interviewer.proctoring import face_model, faces
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
def detector(model_dir: Path) -> face_model.DlibFaces:
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is not installed: run `make test`")
    return face_model.load_face_model(model_dir)


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
    camera = skimage_image("camera.png")
    return {
        "one": canvas(astronaut[0:300, 100:400]),
        "two": canvas(np.hstack([crop, cv2.flip(crop, 1)])),  # two people side by side
        "none": canvas(skimage_image("coffee.png")),  # the applicant walked away
        "other": canvas(camera[0:300, 100:400]),  # someone else, head turned ~45 degrees
        "pair": canvas(np.hstack([crop, camera[0:250, 150:350]])),  # two different people
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
    tmp_path: Path, detector: face_model.DlibFaces, scenes: dict[str, np.ndarray]
) -> None:
    chunks = video(tmp_path, [("one", 6)], scenes)
    frames = list(faces.sample_frames(chunks, fps=1.0, width=W))
    assert [t for t, _ in frames] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert frames[0][1].shape == (H, W, 3)
    assert len(detector.faces(frames[3][1])) == 1


def test_no_face_and_two_faces_become_episodes_with_thumbnails(
    tmp_path: Path, detector: face_model.DlibFaces, scenes: dict[str, np.ndarray]
) -> None:
    plan = [("one", 6), ("none", 8), ("one", 4), ("two", 6), ("one", 4)]
    result = faces.camera_episodes(video(tmp_path, plan, scenes), detector, T)
    episodes, sampled = result.episodes, result.frames
    assert sampled == 28
    kinds = [(e.kind, e.start_s, e.end_s, e.frames) for e in episodes]
    assert kinds == [("no_face", 6.0, 14.0, 8), ("multiple_faces", 18.0, 24.0, 6)]
    no_face, several = episodes
    assert several.max_faces == 2
    assert no_face.thumbnail is not None and several.thumbnail is not None
    assert severity_of(EventKind.no_face, no_face.duration_s, T) is Severity.warning
    assert severity_of(EventKind.multiple_faces, several.frames, T) is Severity.high


def test_one_face_throughout_raises_nothing(
    tmp_path: Path, detector: face_model.DlibFaces, scenes: dict[str, np.ndarray]
) -> None:
    result = faces.camera_episodes(video(tmp_path, [("one", 20)], scenes), detector, T)
    assert result.frames == 20
    assert result.episodes == []
    assert result.reference is not None and result.reference.shape == (128,)


def test_runs_bridge_single_frame_blips() -> None:
    flags = [False, True, True, False, True, False, False, True]
    assert faces.runs(flags) == [(1, 4), (7, 7)]
    assert faces.runs(flags, bridge=0) == [(1, 2), (4, 4), (7, 7)]


def test_analyze_stores_camera_events_with_thumbnails_once(
    db_engine: Engine,
    tmp_path: Path,
    detector: face_model.DlibFaces,
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


# --- the trained models on real photos and their hard variants ----------------------------------


def covered(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """A hand over the lower third of the face (mouth and chin)."""
    x, y, w, h = box
    out = image.copy()
    out[y + 2 * h // 3 : y + h + 4, x - 4 : x + w + 4] = (40, 60, 90)
    return out


def test_real_photos_one_face_none_and_two(
    detector: face_model.DlibFaces, scenes: dict[str, np.ndarray]
) -> None:
    assert len(detector.faces(scenes["one"])) == 1
    assert len(detector.faces(scenes["two"])) == 2
    for empty in ("coffee.png", "chelsea.png", "rocket.jpg"):  # a cat's face is no face
        assert detector.faces(canvas(skimage_image(empty))) == [], empty


def test_two_different_people_one_turned_needs_the_cnn(
    model_dir: Path, detector: face_model.DlibFaces, scenes: dict[str, np.ndarray]
) -> None:
    """HOG finds the frontal astronaut, so "hog+cnn" stops there and misses the turned man
    beside her; the CNN on every frame finds both (the price of the default's speed)."""
    assert len(detector.faces(scenes["pair"])) == 1
    thorough = face_model.load_face_model(model_dir, mode="cnn")
    assert len(thorough.faces(scenes["pair"])) == 2


def test_hard_variants_dark_small_covered_turned(
    model_dir: Path, detector: face_model.DlibFaces, scenes: dict[str, np.ndarray]
) -> None:
    one = scenes["one"]
    (face,) = detector.faces(one)
    dark = (one.astype(float) * 0.25).astype(np.uint8)  # a dim room
    small = canvas(cv2.resize(one, (W * 3 // 5, H * 3 // 5)))  # sitting back: ~45 px face
    for name, frame in (("dark", dark), ("small", small), ("covered", covered(one, face.box))):
        assert len(detector.faces(frame)) == 1, name
    # Turned ~45 degrees: only the CNN fallback finds him; HOG alone reports nobody there.
    assert len(detector.faces(scenes["other"])) == 1
    hog_only = face_model.load_face_model(model_dir, mode="hog")
    assert hog_only.faces(scenes["other"]) == []


def test_head_turn_and_identity_from_landmarks_and_embeddings(
    detector: face_model.DlibFaces, scenes: dict[str, np.ndarray]
) -> None:
    (astronaut,) = detector.faces(scenes["one"], embed=True)
    (dark,) = detector.faces((scenes["one"].astype(float) * 0.25).astype(np.uint8), embed=True)
    (mirrored,) = detector.faces(cv2.flip(scenes["one"], 1), embed=True)
    (man,) = detector.faces(scenes["other"], embed=True)
    assert astronaut.yaw_deg < 15 and man.yaw_deg >= T.looking_away_yaw_deg
    assert astronaut.embedding is not None and astronaut.embedding.shape == (128,)
    for same in (dark, mirrored):
        assert same.distance(astronaut.embedding) < T.face_match_distance
    assert man.distance(astronaut.embedding) > T.face_match_distance


def test_stand_in_and_looking_away_become_episodes(
    tmp_path: Path, detector: face_model.DlibFaces, scenes: dict[str, np.ndarray]
) -> None:
    # The man's head turn reads 31-47 degrees from frame to frame of the encoded video (the
    # astronaut's under 10): a 20 degree line keeps this test off the default's 30 boundary.
    t = ProctoringThresholds(
        looking_away_yaw_deg=20, looking_away_warning_s=3, different_person_warning_s=3
    )
    plan = [("one", 6), ("other", 4), ("one", 4)]
    result = faces.camera_episodes(video(tmp_path, plan, scenes), detector, t)
    got = [(e.kind, e.start_s, e.end_s) for e in result.episodes]
    assert got == [("looking_away", 6.0, 10.0), ("different_person", 6.0, 10.0)]
    away, stand_in = result.episodes
    assert away.peak is not None and away.peak >= t.looking_away_yaw_deg
    assert stand_in.peak is not None and stand_in.peak > t.face_match_distance
    assert stand_in.thumbnail is not None

    # A later part (the page was reloaded) is compared with the face of the first one.
    later = tmp_path / "later"
    later.mkdir()
    chunks = video(later, [("other", 4)], scenes)
    again = faces.camera_episodes(chunks, detector, t, reference=result.reference)
    assert [e.kind for e in again.episodes] == ["looking_away", "different_person"]
    alone = faces.camera_episodes(chunks, detector, t)  # on its own, he is the applicant
    assert [e.kind for e in alone.episodes] == ["looking_away"]


def test_face_weights_install_verify_and_missing(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="interviewer models install"):
        face_model.load_face_model(tmp_path / "empty")
    weights.install(tmp_path / "models", only={weights.FACES})
    model = face_model.load_face_model(tmp_path / "models")
    assert model.faces(np.zeros((H, W, 3), np.uint8)) == []
    results = [r for r in weights.verify(tmp_path / "models") if r.component == weights.FACES]
    assert all(r.ok for r in results)
    assert {r.file.name for r in results} == {
        face_model.DETECTOR,
        face_model.LANDMARKS,
        face_model.EMBEDDER,
    }
