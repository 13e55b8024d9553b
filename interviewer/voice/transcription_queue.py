"""The one whisper worker of a process, behind a bounded gate.

Whisper is CPU-bound and not safe to run twice at once on a small machine: every transcription
of the process goes through one worker thread, with at most ``max_pending`` jobs admitted so a
burst of answers waits (backpressure) instead of piling up memory. The transcript someone waits
for now (an applicant who stopped speaking) is taken before segments cut at a pause mid-answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

DEFAULT_MAX_PENDING = 8

T = TypeVar("T")

AWAITED: contextvars.ContextVar[Callable[[], bool] | None] = contextvars.ContextVar(
    "transcript_awaited", default=None
)
"""Set by the caller of ``recognize`` (the capture): says, when the worker picks its next job,
whether someone waits for this transcript now (the applicant has stopped speaking) or only
later (a segment cut at a pause while they go on). The worker takes awaited jobs first."""


class TranscriptionQueue:
    """One worker thread behind a bounded gate: at most ``max_pending`` jobs admitted at once.

    A job counts as in flight from admission until the worker finishes it (even if its caller
    was cancelled meanwhile), so ``peak_depth <= max_pending`` always holds. Callers beyond the
    bound wait in ``run()`` (``waiting``). The gate is an asyncio.Semaphore per event loop; a
    process normally runs one loop, so in practice the bound is process-wide.

    Order: when the worker is free it takes the oldest job whose transcript is awaited now
    (:data:`AWAITED`), else the oldest job. With several interviews on one model, the last
    words of an applicant who has finished (the next question waits for them) no longer
    queue behind segments of applicants still speaking (nobody waits for those yet).
    """

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING, *, name: str = "whisper") -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.max_pending = max_pending
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._depth = 0
        self._waiting = 0
        self.peak_depth = 0
        self.completed = 0
        self._jobs: list[tuple[int, Callable[[], bool] | None, Callable[[], Any], Future[Any]]] = []
        self._seq = itertools.count()

    @property
    def depth(self) -> int:
        """Jobs admitted and not finished: queued for the worker or running."""
        return self._depth

    @property
    def waiting(self) -> int:
        """Callers blocked at the gate because ``max_pending`` jobs are in flight."""
        return self._waiting

    def _gate(self, loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
        with self._lock:
            gate = self._gates.get(loop)
            if gate is None:
                gate = self._gates[loop] = asyncio.Semaphore(self.max_pending)
            return gate

    def _finished(self, loop: asyncio.AbstractEventLoop, gate: asyncio.Semaphore) -> None:
        with self._lock:
            self._depth -= 1
            self.completed += 1
        with contextlib.suppress(RuntimeError):  # a closed loop took its gate with it
            loop.call_soon_threadsafe(gate.release)

    def submit_nowait(self, fn: Callable[..., T], /, *args: Any) -> None:
        """Queue work for the worker without the gate (warm-up at start, not answers)."""
        self._executor.submit(fn, *args)

    async def run(self, fn: Callable[..., T], /, *args: Any) -> T:
        loop = asyncio.get_running_loop()
        gate = self._gate(loop)
        with self._lock:
            self._waiting += 1
        try:
            await gate.acquire()
        finally:
            with self._lock:
                self._waiting -= 1
        with self._lock:
            self._depth += 1
            self.peak_depth = max(self.peak_depth, self._depth)
        cfut: Future[T] = Future()
        with self._lock:
            self._jobs.append((next(self._seq), AWAITED.get(), lambda: fn(*args), cfut))
        try:
            self._executor.submit(self._run_next)  # one call per job: each runs one, the best
        except BaseException:
            with self._lock:
                self._jobs = [j for j in self._jobs if j[3] is not cfut]
            self._finished(loop, gate)
            raise
        cfut.add_done_callback(lambda _f: self._finished(loop, gate))
        return await asyncio.wrap_future(cfut)

    def _run_next(self) -> None:
        """On the worker: run the most urgent job waiting (see the class docstring)."""
        with self._lock:
            if not self._jobs:
                return
            pick = next((j for j in self._jobs if _awaited(j[1])), self._jobs[0])
            self._jobs.remove(pick)
        _, _, call, cfut = pick
        if not cfut.set_running_or_notify_cancel():
            return
        try:
            cfut.set_result(call())
        except BaseException as err:
            cfut.set_exception(err)


def _awaited(check: Callable[[], bool] | None) -> bool:
    if check is None:
        return False
    try:
        return bool(check())
    except Exception:  # a capture torn down meanwhile: nobody waits
        return False


_SHARED_QUEUE: TranscriptionQueue | None = None
_SHARED_LOCK = threading.Lock()


def shared_queue() -> TranscriptionQueue:
    """The process-wide transcription queue every WhisperSTT uses unless given another."""
    global _SHARED_QUEUE
    with _SHARED_LOCK:
        if _SHARED_QUEUE is None:
            _SHARED_QUEUE = TranscriptionQueue()
        return _SHARED_QUEUE
