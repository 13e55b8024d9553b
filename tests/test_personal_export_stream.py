"""The personal-data zip is written as it is sent: memory does not grow with the recordings."""

from __future__ import annotations

import asyncio
import json
import os
import tracemalloc
import zipfile
from pathlib import Path

from report_support import seed_report
from web_support import make_settings

from interviewer import privacy
from interviewer.store.recordings import Recordings
from interviewer.web.media import stream_written

BIG = 200 * 1024 * 1024


def test_the_zip_streams_with_memory_independent_of_file_size(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    seeded = seed_report(settings)
    recordings = Recordings(settings.recordings_dir)
    big = recordings.root / str(seeded.interview_id) / "camera-huge.webm"
    block = os.urandom(1024 * 1024)  # a period far beyond deflate's 32 KiB window: incompressible
    with big.open("wb") as f:
        for _ in range(BIG // len(block)):
            f.write(block)
    engine = seeded.seeded.engine
    out = tmp_path / "export.zip"

    def write(pipe) -> None:
        privacy.write_export(engine, recordings, [seeded.interview_id], pipe)

    async def download() -> int:
        chunks = 0
        with out.open("wb") as f:
            async for chunk in stream_written(write):
                f.write(chunk)
                chunks += 1
        return chunks

    tracemalloc.start()
    try:
        chunks = asyncio.run(download())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert chunks > 100  # sent as it was written, not in one piece
    assert peak < 16 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB for a {BIG >> 20} MiB file"
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert (
            zf.getinfo(f"interview-{seeded.interview_id}/recordings/camera-huge.webm").file_size
            == BIG
        )
        report = json.loads(zf.read(f"interview-{seeded.interview_id}/report.json"))
        assert report["applicant"]["email"] == "ada@example.invalid"
        assert f"applicant-{seeded.applicant_id}.json" in names and "README.txt" in names
        assert sum(n.endswith(".wav") for n in names) == 3
