"""The scorer process: one spawned process that loads the judge once and scores answers.

Spawned, so no torch state is forked. The interview side ``await``s ``submit(answer_id)`` after
storing each answer and goes on: scoring never runs on the event loop, and only the last
answer's scoring is left to wait for when the interview ends. :mod:`interviewer.scoring.live`
feeds it from running interviews; the scoring itself is :mod:`interviewer.scoring.service`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.synchronize
import os
import queue
import time
from pathlib import Path
from typing import Any

from sqlmodel import Session

from interviewer.priority import background_process, yield_to_live
from interviewer.scoring.evidence import EvidenceFinder
from interviewer.scoring.judge import Judge
from interviewer.scoring.service import interview_of, score_answer
from interviewer.store.db import create_db_engine, session_scope
from interviewer.store.models import Answer
from interviewer.store.repo import bank_of

log = logging.getLogger(__name__)


class ScorerError(RuntimeError):
    """The scoring worker process failed to start or died."""


class ScorerProcess:
    """One spawned process that loads the judge once and scores answer ids from a queue.

    Use from asyncio: ``worker.start()``, then ``await worker.submit(answer_id)`` after each
    stored answer (it waits, without blocking the loop, while the queue is full), and
    ``await worker.drain()`` / ``worker.stop()`` at the end; ``prepare(interview_id)`` when an
    interview starts lets it get ahead on that bank. ``results`` collects
    ``(answer_id, score or None, error or None)`` as they come back. The process pauses
    while a live interview holds the gate in ``gate_dir`` (``interviewer.priority``; None:
    this machine's default).
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        model: str | None = None,
        model_dir: Path | str | None = None,
        maxsize: int = 32,
        threads: int | None = None,
        evidence: bool = True,
        gate_dir: Path | str | None = None,
    ) -> None:
        self.database_url = database_url
        self.gate_dir = str(gate_dir) if gate_dir is not None else None
        self.model = model
        self.model_dir = str(model_dir) if model_dir is not None else None
        self.maxsize = maxsize
        self.threads = threads
        self.evidence = evidence
        self.results: list[tuple[int, float | None, str | None]] = []
        self._ctx = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._submitted = 0

    def start(self) -> ScorerProcess:
        if self._process is not None:
            return self
        self._queue = self._ctx.Queue(self.maxsize)
        self._done = self._ctx.Queue()
        self._ready = self._ctx.Event()
        self._idle = self._ctx.Event()
        self._process = self._ctx.Process(
            target=_scorer_main,
            args=(
                self._queue,
                self._done,
                self._ready,
                self._idle,
                self.database_url,
                self.model,
                self.model_dir,
                self.threads,
                self.evidence,
                self.gate_dir,
            ),
            name="interviewer-scoring",
            daemon=True,
        )
        self._process.start()
        return self

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def submit_nowait(self, answer_id: int) -> None:
        """Raises ``queue.Full`` when the worker is that far behind."""
        self._check_alive()
        self._queue.put_nowait(("score", int(answer_id)))
        self._submitted += 1

    async def submit(self, answer_id: int, *, poll_s: float = 0.05) -> None:
        """Queue an answer for scoring; awaits (cancellably) while the queue is full."""
        while True:
            try:
                self.submit_nowait(answer_id)
                return
            except queue.Full:
                await asyncio.sleep(poll_s)
                poll_s = min(poll_s * 2, 0.5)

    def prepare(self, interview_id: int) -> bool:
        """Hint that an interview is starting: the worker computes the per-question anchors of
        its bank while idle, so each answer later costs one judgement. False if the queue is
        full (the hint is dropped: it only saves time)."""
        self._check_alive()
        try:
            self._queue.put_nowait(("warm", int(interview_id)))
        except queue.Full:
            return False
        return True

    def collect(self) -> list[tuple[int, float | None, str | None]]:
        """Results that came back since the last call (also appended to ``results``)."""
        new = []
        while True:
            try:
                item = self._done.get_nowait()
            except queue.Empty:
                break
            if item[0] == "failed":
                raise ScorerError(item[1])
            new.append(tuple(item[1:]))
        self.results.extend(new)
        return new

    async def ready(self, timeout: float | None = None) -> None:
        """Wait until the model is loaded (the first answer would wait for it otherwise)."""
        await self._until(self._ready, timeout, "scoring worker did not load its model in time")

    async def drain(
        self, timeout: float | None = None
    ) -> list[tuple[int, float | None, str | None]]:
        """Wait until every submitted answer has come back; returns all results so far."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while len(self.results) < self._submitted:
            self.collect()
            if len(self.results) >= self._submitted:
                break
            self._check_alive()
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"scoring worker: {self._submitted - len(self.results)} answers still pending"
                )
            await asyncio.sleep(0.1)
        return list(self.results)

    async def idle(self, timeout: float | None = None) -> None:
        """Wait until the worker has nothing queued and no warm-up left (benchmarks, tests)."""
        await self._until(self._idle, timeout, "scoring worker is still busy")

    async def _until(
        self, event: multiprocessing.synchronize.Event, timeout: float | None, late: str
    ) -> None:
        """Poll until the worker sets ``event``, collecting results and noticing a dead worker
        meanwhile; TimeoutError(``late``) after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not event.is_set():
            self.collect()
            self._check_alive()
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(late)
            await asyncio.sleep(0.1)

    def stop(self, timeout: float = 30.0) -> None:
        """Let the worker finish what is queued, then end it (killed after ``timeout``)."""
        if self._process is None:
            return
        with contextlib.suppress(Exception):
            if self._process.is_alive():
                self._queue.put(None, timeout=timeout)
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        with contextlib.suppress(ScorerError):
            self.collect()
        self._process = None

    async def aclose(self, timeout: float = 30.0) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.stop, timeout)

    def _check_alive(self) -> None:
        if self._process is None:
            raise ScorerError("scoring worker is not started: call start() first")
        if not self._process.is_alive():
            self.collect()
            raise ScorerError(f"scoring worker exited with code {self._process.exitcode}")


def _scorer_main(
    jobs: Any,
    done: Any,
    ready: Any,
    idle: Any,
    database_url: str | None,
    model: str | None,
    model_dir: str | None,
    threads: int | None,
    evidence: bool,
    gate_dir: str | None = None,
) -> None:
    # Before torch loads: idle OpenMP threads sleep instead of spinning, which otherwise steals
    # the cores the voice agent (whisper, VAD) needs and slows both sides many times over.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    # live interviews first: the backlog waits, not the applicants (priority, and pauses at
    # the live gate between the model's layers and between jobs)
    background_process(gate_dir)

    try:
        engine = create_db_engine(database_url)
        judge = Judge(model, model_dir, threads=threads).load()
        judge.pause_between_layers(yield_to_live)
        finder = EvidenceFinder(model_dir).load() if evidence else None
    except Exception as err:  # reported to the parent, which raises it as ScorerError
        done.put(("failed", f"scoring worker could not start: {err}"))
        return
    ready.set()
    warm: list[Any] = []  # questions whose anchors are still to compute, done while idle
    parent = multiprocessing.parent_process()
    while True:
        try:
            job = jobs.get(timeout=0.2 if warm else 0.5)
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                break  # the interview process was killed: nobody is left to score for
            if warm:
                judge.warm(warm.pop(0))
            else:
                idle.set()
            continue
        idle.clear()
        if job is None:
            break
        yield_to_live()
        kind, ident = job
        try:
            if kind == "warm":
                with session_scope(engine) as session:
                    _queue_warm_up(session, ident, judge, warm)
                continue
            # no transaction is open while the model runs: interview steps never wait for it
            result = score_answer(engine, ident, judge, finder, rescore=True)
            with session_scope(engine) as session:
                answer = session.get(Answer, ident)
                if answer is not None:
                    _queue_warm_up(session, answer.interview_id, judge, warm)
            done.put(("done", ident, None if result is None else result.score, None))
        except Exception as err:
            log.exception("scoring job %s %s failed", kind, ident)
            if kind == "score":
                done.put(("done", ident, None, f"{type(err).__name__}: {err}"))


def _queue_warm_up(session: Session, interview_id: int, judge: Judge, warm: list[Any]) -> None:
    interview = interview_of(session, interview_id)
    for question in bank_of(session, interview.bank_version_id).questions:
        if not judge.has_anchors(question) and question not in warm:
            warm.append(question)
