"""Recordings storage: the local folder and an S3 bucket on a real S3 server (Ceph RGW).

The same safety and round-trip tests run on both backends (``storage`` fixture). The S3 ones
talk to Ceph's RADOS Gateway started by ``tests/s3_server.py`` (Debian's ``radosgw``), not to
an emulator.
"""

from __future__ import annotations

import contextlib
import os
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import s3_server
from livekit import rtc

from interviewer.config import Settings
from interviewer.store.storage import LocalStorage, S3Storage, StorageConfigError, open_storage
from interviewer.voice.io import StreamingWavWriter


@pytest.fixture
def s3(s3_server: s3_server.CephS3) -> s3_server.CephS3:
    """The session's Ceph S3 server (tests/conftest.py)."""
    return s3_server


_bucket_n = 0


def _s3_storage(server: s3_server.CephS3, root: Path, **kw: object) -> S3Storage:
    global _bucket_n
    _bucket_n += 1
    bucket = kw.pop("bucket", None) or f"rec-{os.getpid()}-{_bucket_n}"
    store = S3Storage(
        root,
        bucket=str(bucket),
        endpoint_url=server.endpoint,
        access_key_id=server.access_key,
        secret_access_key=server.secret_key,
        **kw,  # type: ignore[arg-type]
    )
    with contextlib.suppress(store.client.exceptions.BucketAlreadyOwnedByYou):
        store.client.create_bucket(Bucket=bucket)
    return store


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> LocalStorage:
    if request.param == "local":
        return LocalStorage(tmp_path / "rec")
    return _s3_storage(request.getfixturevalue("s3"), tmp_path / "stage", prefix="tenant-a")


def _speak(path: Path, seconds: float = 0.5, rate: int = 16_000) -> bytes:
    """Write a WAV the way a live answer is written: 20 ms frames, one after the other."""
    writer = StreamingWavWriter(path, rate)
    t = np.arange(int(seconds * rate)) / rate
    pcm = (np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2")
    step = rate // 50
    for i in range(0, len(pcm), step):
        chunk = pcm[i : i + step]
        writer.write(rtc.AudioFrame(chunk.tobytes(), rate, 1, len(chunk)))
    writer.close()
    return path.read_bytes()


# --- both backends ------------------------------------------------------------------------------


def test_answer_written_incrementally_then_committed_and_read_back(storage: LocalStorage) -> None:
    path = storage.answer_audio(7, "melanoma-abcde", 1)
    data = _speak(path)
    key = storage.commit(path)
    assert key == "7/melanoma-abcde.followup-1.wav"
    back = storage.open_for_read(key)
    assert back.read_bytes() == data
    with wave.open(str(back)) as w:
        assert w.getnframes() == 8000


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "7/../../x", "7\\a.wav", "", "7/a\x00.wav"])
def test_keys_that_leave_the_root_are_refused(storage: LocalStorage, bad: str) -> None:
    with pytest.raises(ValueError):
        storage.open_for_read(bad)


def test_ids_from_clients_never_make_paths(storage: LocalStorage) -> None:
    for qid in ("../x", "A", "a/b", ""):
        with pytest.raises(ValueError):
            storage.answer_audio(1, qid)
    with pytest.raises(ValueError):
        storage.answer_audio(True, "q")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        storage.media_chunk(1, "../camera", 0)


def test_symlink_planted_in_the_tree_is_refused(storage: LocalStorage, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    storage.root.mkdir(parents=True, exist_ok=True)
    (storage.root / "9").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError):
        storage.answer_audio(9, "q")
    assert not any(outside.iterdir())


def test_purge_removes_every_copy(storage: LocalStorage) -> None:
    for q in ("a", "b"):
        path = storage.answer_audio(3, q)
        _speak(path)
        storage.commit(path)
    other = storage.answer_audio(4, "a")
    _speak(other)
    storage.commit(other)
    assert storage.purge_interview(3)
    with pytest.raises(FileNotFoundError):
        storage.open_for_read("3/a.wav")
    assert storage.open_for_read("4/a.wav").is_file()
    if isinstance(storage, S3Storage):
        assert storage.list_keys(3) == []
        assert storage.list_keys(4) == ["4/a.wav"]


# --- S3 only ---------------------------------------------------------------------------------


def test_s3_holds_the_same_tree_under_its_prefix(s3: s3_server.CephS3, tmp_path: Path) -> None:
    store = _s3_storage(s3, tmp_path / "stage", prefix="tenant-b/")
    path = store.media_chunk(12, "camera", 3, ext="webm")
    path.write_bytes(b"webm-bytes")
    key = store.commit(path)
    obj = store.client.get_object(Bucket=store.bucket, Key="tenant-b/12/media/camera/00000003.webm")
    assert obj["Body"].read() == b"webm-bytes"
    assert key == "12/media/camera/00000003.webm"


def test_s3_read_on_another_machine_downloads(s3: s3_server.CephS3, tmp_path: Path) -> None:
    """A worker wrote the answer; the app, with an empty staging folder, serves it."""
    worker = _s3_storage(s3, tmp_path / "worker", keep_local=False)
    path = worker.answer_audio(5, "q1")
    data = _speak(path)
    key = worker.commit(path)
    assert not path.exists()  # keep_local=False: only the bucket has it now
    chunk = worker.media_chunk(5, "camera", 1)
    chunk.write_bytes(b"webm")
    worker.commit(chunk)
    assert chunk.exists()  # media chunks stay: the upload route numbers parts from them
    assert worker.list_keys(5) == ["5/media/camera/00000001.webm", "5/q1.wav"]
    app = _s3_storage(s3, tmp_path / "app", bucket=worker.bucket)
    got = app.open_for_read(key)
    assert got.read_bytes() == data
    assert got.is_relative_to(app.root)
    assert not [p for p in got.parent.iterdir() if p.name.startswith(".part-")]
    with pytest.raises(FileNotFoundError):
        app.open_for_read("5/q1.followup-9.wav")


def test_s3_outage_keeps_the_answer_staged_until_sync(s3: s3_server.CephS3, tmp_path: Path) -> None:
    """A real connection failure (nothing listens on the port): the answer is not lost."""
    good = _s3_storage(s3, tmp_path / "stage")
    down = S3Storage(
        tmp_path / "stage",
        bucket=good.bucket,
        endpoint_url=f"http://127.0.0.1:{s3_server._free_port()}",
        access_key_id=s3.access_key,
        secret_access_key=s3.secret_key,
    )
    path = down.answer_audio(8, "q2")
    data = _speak(path)
    assert down.commit(path) == "8/q2.wav"  # logged, not raised
    assert path.read_bytes() == data
    # during the outage the next answers are staged at once, not after another timeout
    second = down.answer_audio(8, "q3")
    _speak(second)
    started = time.monotonic()
    assert down.commit(second) == "8/q3.wav"
    assert time.monotonic() - started < 0.5
    assert good.list_keys(8) == []
    assert good.sync() == 2
    assert good.list_keys(8) == ["8/q2.wav", "8/q3.wav"]
    assert good.sync() == 0  # nothing twice


def test_settings_select_the_backend(s3: s3_server.CephS3, tmp_path: Path) -> None:
    local = open_storage(Settings(recordings_dir=tmp_path / "r"))
    assert type(local) is LocalStorage
    with pytest.raises(StorageConfigError, match="INTERVIEWER_S3_BUCKET"):
        open_storage(Settings(storage="s3", recordings_dir=tmp_path / "r"))
    made = _s3_storage(s3, tmp_path / "x")
    env = {
        "INTERVIEWER_STORAGE": "s3",
        "INTERVIEWER_S3_BUCKET": made.bucket,
        "INTERVIEWER_S3_ENDPOINT_URL": s3.endpoint,
        "INTERVIEWER_S3_ACCESS_KEY_ID": s3.access_key,
        "INTERVIEWER_S3_SECRET_ACCESS_KEY": s3.secret_key,
        "INTERVIEWER_RECORDINGS_DIR": str(tmp_path / "r"),
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        store = open_storage(Settings())
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert isinstance(store, S3Storage)
    store.check()
    assert "secret" not in repr(store)
    wrong = S3Storage(tmp_path / "r", bucket="no-such-bucket", endpoint_url=s3.endpoint,
                      access_key_id=s3.access_key, secret_access_key=s3.secret_key)  # fmt: skip
    with pytest.raises(StorageConfigError, match="INTERVIEWER_STORAGE=local"):
        wrong.check()


def test_cli_check_and_sync(s3: s3_server.CephS3, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from interviewer.cli import app
    from interviewer.config import get_settings

    made = _s3_storage(s3, tmp_path / "stage")
    _speak(made.answer_audio(21, "q"))  # staged, never committed (as after an outage)
    env = {
        "INTERVIEWER_STORAGE": "s3",
        "INTERVIEWER_S3_BUCKET": made.bucket,
        "INTERVIEWER_S3_ENDPOINT_URL": s3.endpoint,
        "INTERVIEWER_S3_ACCESS_KEY_ID": s3.access_key,
        "INTERVIEWER_S3_SECRET_ACCESS_KEY": s3.secret_key,
        "INTERVIEWER_RECORDINGS_DIR": str(tmp_path / "stage"),
    }
    runner = CliRunner()
    get_settings.cache_clear()
    try:
        res = runner.invoke(app, ["storage", "check"], env=env)
        assert res.exit_code == 0 and made.bucket in res.output, res.output
        res = runner.invoke(app, ["storage", "sync"], env=env)
        assert res.exit_code == 0 and "uploaded 1 recording" in res.output, res.output
        assert made.list_keys(21) == ["21/q.wav"]
        get_settings.cache_clear()  # settings are read once per process
        res = runner.invoke(app, ["storage", "check"], env={**env, "INTERVIEWER_S3_BUCKET": "nope"})
        assert res.exit_code == 1 and "INTERVIEWER_STORAGE=local" in res.output
    finally:
        get_settings.cache_clear()
