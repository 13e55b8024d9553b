"""Failed sign-ins counted per account and per client address, so guessing passwords stalls.

In-process, which is right for the single-process embedded server (a multi-process deployment
would keep this in the database); past the limit the login form answers 429 with how long to
wait.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

IP_FAILURE_FACTOR = 4
"""A client address may fail this many times more than one account (an office behind one NAT)."""


class LoginThrottle:
    """Failed sign-ins per key ("acct:<email>", "ip:<address>") in a sliding window.

    ``retry_after(keys)`` is 0 while every key is under its limit, else the seconds until the
    oldest counted failure of the worst key leaves the window. In-process by design: the
    embedded server is one process (a multi-process deployment would keep this in the database).
    """

    MAX_KEYS = 50_000

    def __init__(
        self,
        max_failures: int = 5,
        window_s: float = 15 * 60,
        *,
        ip_factor: int = IP_FAILURE_FACTOR,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.ip_factor = ip_factor
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _limit(self, key: str) -> int:
        return self.max_failures * (self.ip_factor if key.startswith("ip:") else 1)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and now - times[0] >= self.window_s:
            times.popleft()
        if not times:
            self._failures.pop(key, None)
        return times

    def retry_after(self, *keys: str) -> float:
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if len(times) >= self._limit(key):
                    wait = max(wait, self.window_s - (now - times[-self._limit(key)]))
        return wait

    def failure(self, *keys: str) -> bool:
        """Count a failure; True when it made some key reach its limit."""
        now = self.clock()
        reached = False
        with self._lock:
            if len(self._failures) > self.MAX_KEYS:
                for key in list(self._failures):
                    self._recent(key, now)
            for key in keys:
                times = self._failures.setdefault(key, deque())
                times.append(now)
                while len(times) > self._limit(key):
                    times.popleft()
                reached = reached or len(times) >= self._limit(key)
        return reached

    def reset(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


def throttle_keys(email: str, client: str) -> tuple[str, str]:
    return f"acct:{email.strip().lower()[:320]}", f"ip:{client}"
