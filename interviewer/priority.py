"""Background work yields the CPU to live interviews.

On a small machine the scoring worker (a 1.5B-parameter model) and the integrity analysis
compete for the same cores as the interviews in progress (whisper, the VAD, the voice). An
applicant waiting for the next question notices every tenth of a second; a recruiter reading
scores a minute later does not. Two mechanisms, both needed:

- **Priority.** Background processes lower their own scheduling priority when they start
  (Unix niceness; and their autogroup's when they lead their own session, since with
  ``sched_autogroup`` the kernel compares niceness only inside one session): they still get
  every idle cycle.
- **The live gate.** Niceness cannot stop a model from streaming gigabytes of weights through
  the memory bus that whisper needs too, so while an interview is in its critical window (the
  applicant speaking, then until the next line of the agent plays) it *holds* the gate, and
  background work pauses at its next checkpoint (:func:`yield_to_live`: between model layers,
  between video frames). A hold is a file in a directory every process of the machine sees,
  whose mtime is its expiry: a lease. The live side renews it while the window lasts; a live
  process that dies leaves a file that expires by itself, so nothing waits on it for long.
  One pause is also capped (``max_pause_s``, then ``grace_s`` of work), so interviews back
  to back all day still let scoring through now and then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from pathlib import Path

from interviewer.config import get_settings

log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 5.0
"""How long a hold lasts unless renewed (a dead interview blocks nothing longer than this)."""
DEFAULT_MAX_PAUSE_S = 60.0
"""The longest one pause of background work, however many interviews keep the gate held..."""
DEFAULT_GRACE_S = 15.0
"""...after which it runs this long regardless (a forward pass or two), then pauses again."""


def lower_priority(increment: int | None = None) -> int:
    """Add ``increment`` (default ``INTERVIEWER_BACKGROUND_NICENESS``) to this process's
    niceness and return the new value; where the OS refuses, log it and carry on at the
    current priority (slower interviews are better than no scores)."""
    step = get_settings().background_niceness if increment is None else increment
    try:
        value = os.nice(step)
    except (AttributeError, OSError) as err:  # no os.nice (Windows), or not permitted
        log.warning("could not lower this background process's priority: %s", err)
        return os.nice(0) if hasattr(os, "nice") else 0
    _lower_autogroup(value)
    return value


def _lower_autogroup(nice: int) -> None:
    """A session leader (a scorer started by systemd or from its own shell) is alone in its
    autogroup, which the kernel weighs against the interviews' session as an equal whatever
    the niceness inside it: lower the group too. A process inside someone else's session (the
    server's scorer child) must not: that would lower the server with it."""
    path = Path("/proc/self/autogroup")
    if not path.exists() or os.getsid(0) != os.getpid():
        return
    with contextlib.suppress(OSError):
        path.write_text(f"{nice}\n")


def default_gate_dir() -> Path:
    """One directory per user and machine: the CPU is the machine's, whatever data_dir each
    deployment on it uses (``INTERVIEWER_LIVE_GATE_DIR`` overrides)."""
    configured = get_settings().live_gate_dir
    if configured is not None:
        return configured
    shm = Path("/dev/shm")
    root = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return root / f"interviewer-live-{os.getuid() if hasattr(os, 'getuid') else 0}"


class LiveGate:
    """Holds by live interviews, pauses of background work; see the module docstring."""

    def __init__(
        self,
        directory: Path | str | None = None,
        *,
        lease_s: float = DEFAULT_LEASE_S,
        max_pause_s: float = DEFAULT_MAX_PAUSE_S,
        grace_s: float = DEFAULT_GRACE_S,
        poll_s: float = 0.05,
    ) -> None:
        self.directory = Path(directory) if directory is not None else default_gate_dir()
        self.lease_s = lease_s
        self.max_pause_s = max_pause_s
        self.grace_s = grace_s
        self.poll_s = poll_s
        self._grace_until = 0.0
        self.paused_s = 0.0  # total time this process's background work waited (metrics)
        self.pauses = 0

    # -- the live side --

    def _path(self, key: str) -> Path:
        return self.directory / f"{os.getpid()}-{key}"

    def hold(self, key: str, lease_s: float | None = None) -> None:
        """Start or renew the hold ``key`` (unique in this process) for ``lease_s``. Never
        raises: an interview must not fail because its hold could not be written."""
        expiry = time.time() + (self.lease_s if lease_s is None else lease_s)
        path = self._path(key)
        try:
            try:
                os.utime(path, (expiry, expiry))
            except FileNotFoundError:
                self.directory.mkdir(parents=True, exist_ok=True)
                path.touch()
                os.utime(path, (expiry, expiry))
        except OSError as err:
            log.warning("live gate: could not hold %s: %s", path, err)

    def release(self, key: str) -> None:
        with contextlib.suppress(OSError):
            self._path(key).unlink()

    # -- the background side --

    def held(self) -> bool:
        """Is any live hold unexpired? Expired ones (a dead process's) are removed."""
        now = time.time()
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return False
        found = False
        for entry in entries:
            try:
                expiry = entry.stat().st_mtime
            except OSError:
                continue  # released meanwhile
            if expiry > now:
                found = True
            elif expiry < now - 1.0:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
        return found

    def wait(self) -> float:
        """Block while the gate is held, the seconds waited: at most ``max_pause_s``, and then
        not at all for ``grace_s`` (so that interviews back to back never starve the work)."""
        if time.monotonic() < self._grace_until or not self.held():
            return 0.0
        started = time.monotonic()
        deadline = started + self.max_pause_s
        while self.held():
            if time.monotonic() >= deadline:
                self._grace_until = time.monotonic() + self.grace_s
                break
            time.sleep(self.poll_s)
        waited = time.monotonic() - started
        self.paused_s += waited
        self.pauses += 1
        return waited


class LiveWindow:
    """One interview's hold on the gate, driven by its session's events: from the moment the
    applicant starts speaking (whisper transcribes as they go) until the agent's next line
    starts playing. A quiet spell longer than ``quiet_release_s`` (the applicant thinking)
    lets background work run meanwhile; speech takes the hold back. Call from the event loop.
    """

    def __init__(self, gate: LiveGate, key: str, *, quiet_release_s: float = 8.0) -> None:
        self.gate = gate
        self.key = key
        self.quiet_release_s = quiet_release_s
        self.holding = False
        self.windows = 0  # how many times it took the hold (tests, metrics)
        self._speaking = False
        self._quiet_since = 0.0
        self._renewer: asyncio.Task[None] | None = None

    def user_speaking(self, speaking: bool) -> None:
        self._speaking = speaking
        if speaking:
            self._take()
        else:
            self._quiet_since = time.monotonic()

    def agent_speaking(self) -> None:
        """The next line plays: the live path has its answer."""
        self._drop()

    def close(self) -> None:
        self._drop()

    def _take(self) -> None:
        if not self.holding:
            self.holding = True
            self.windows += 1
        self.gate.hold(self.key)
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew())

    def _drop(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            self._renewer = None
        if self.holding:
            self.holding = False
            self.gate.release(self.key)

    async def _renew(self) -> None:
        while self.holding:
            await asyncio.sleep(self.gate.lease_s / 3)
            quiet = not self._speaking and time.monotonic() - self._quiet_since
            if quiet and quiet > self.quiet_release_s:
                self.holding = False
                self.gate.release(self.key)
                return
            self.gate.hold(self.key)


_GATE: LiveGate | None = None


def set_gate(gate: LiveGate | None) -> None:
    """Make this process's background work pause for ``gate`` (None: never pause)."""
    global _GATE
    _GATE = gate


def current_gate() -> LiveGate | None:
    return _GATE


def yield_to_live() -> float:
    """A checkpoint of background work: waits while a live interview holds the gate (only in
    a process that set one with :func:`set_gate` or :func:`background_process`)."""
    gate = _GATE
    return gate.wait() if gate is not None else 0.0


def background_process(gate_dir: Path | str | None = None) -> LiveGate:
    """What a background process (scorer, analysis) does first: lower its priority and pause
    for the live gate at its checkpoints. Returns the gate."""
    lower_priority()
    gate = LiveGate(gate_dir)
    set_gate(gate)
    return gate
