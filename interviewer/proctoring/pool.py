"""A worker process for the analysis after an interview (``analyze.analyze_and_summarize``).

Kept apart from ``analyze`` on purpose: importing this module costs nothing (the detectors'
numpy/scipy/OpenCV load only in the worker), so the web server can hold an ``AnalysisPool``
from its start.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


def _init(gate_dir: str | None) -> None:
    # Before numpy/torch load in this process: one thread each, so the interviews still going
    # on (whisper, the VAD) keep the machine's other core, and idle threads sleep.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from interviewer.priority import background_process  # in the child: after the env above

    background_process(gate_dir)  # live interviews first: priority, and the live gate


def _analyze(
    database_url: str, recordings_root: str, interview_id: int, model_dir: str | None
) -> dict[str, Any]:
    # in the child only: the detectors' libraries stay out of the server process
    from interviewer.proctoring.analyze import analyze_and_summarize

    return analyze_and_summarize(database_url, recordings_root, interview_id, model_dir)


class AnalysisPool:
    """One spawned worker process that analyses interviews after they end, one at a time.

    Started on the first interview to analyse; the process keeps its models (face detector,
    sentence embedder) between interviews. ``await pool.analyze(id)`` never blocks the event
    loop; ``close()`` drops what has not started. The worker pauses between detectors and
    video frames while a live interview holds the gate in ``gate_dir`` (None: this machine's).
    """

    def __init__(
        self,
        database_url: str,
        recordings_root: Path | str,
        model_dir: Path | str | None,
        *,
        gate_dir: Path | str | None = None,
    ) -> None:
        self.database_url = database_url
        self.gate_dir = str(gate_dir) if gate_dir is not None else None
        self.recordings_root = str(recordings_root)
        self.model_dir = str(model_dir) if model_dir is not None else None
        self._executor: ProcessPoolExecutor | None = None

    async def analyze(self, interview_id: int) -> dict[str, Any]:
        """The stored summary's detail (see ``analyze_and_summarize``)."""
        return await asyncio.get_running_loop().run_in_executor(
            self._start(),
            _analyze,
            self.database_url,
            self.recordings_root,
            int(interview_id),
            self.model_dir,
        )

    async def niceness(self) -> int:
        """The worker process's scheduling niceness (it lowers its priority when it starts)."""
        return await asyncio.get_running_loop().run_in_executor(self._start(), os.nice, 0)

    def _start(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init,
                initargs=(self.gate_dir,),
            )
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
