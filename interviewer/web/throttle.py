"""Sign-in attempts counted per account and per client address, so guessing passwords stalls.

The counts live in the database (``loginattempt``), so that every server process shares them,
and an attempt is reserved atomically *before* its password is checked: concurrent guesses
cannot all slip in under the limit. Past the limit the login form answers 429 with how long to
wait.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from sqlalchemy import Engine, case, create_engine, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

from interviewer.store.db import retry_busy, session_scope
from interviewer.store.models import LoginAttempt

IP_FAILURE_FACTOR = 4
"""A client address may fail this many times more than one account (an office behind one NAT)."""

SWEEP_EVERY = 200
"""Rows of passed windows are deleted once every this many reservations (unknown emails add
rows)."""

_TABLE = LoginAttempt.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Reservation:
    """One sign-in attempt taken from every key's allowance (or refused: ``granted`` False).

    A granted reservation counts as a failure until released; ``reached`` says that, if it
    fails, some key is then at its limit (the attempt that locks)."""

    keys: tuple[str, ...]
    granted: bool
    reached: bool = False
    wait: float = 0.0


class LoginThrottle:
    """Sign-in attempts per key ("acct:<email>", "ip:<address>") in a window opened by the key's
    first attempt; the window's length is also the pause once a key reaches its limit.

    ``reserve(keys)`` before checking a password, ``release(...)`` when it was right;
    ``retry_after(keys)`` is 0 while every key is under its limit, else the seconds until the
    worst key's window ends. Without ``engine``, a private in-memory database (one process).
    """

    def __init__(
        self,
        max_failures: int = 5,
        window_s: float = 15 * 60,
        *,
        ip_factor: int = IP_FAILURE_FACTOR,
        clock: Callable[[], float] = time.time,
        engine: Engine | None = None,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.ip_factor = ip_factor
        self.clock = clock
        # The private database is one shared connection: its users take turns.
        self._private = threading.Lock() if engine is None else None
        self.engine = engine if engine is not None else _private_engine()
        self._reservations = itertools.count(1)

    def _limit(self, key: str) -> int:
        return self.max_failures * (self.ip_factor if key.startswith("ip:") else 1)

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with self._private or nullcontext(), session_scope(self.engine, write=True) as s:
            yield s

    def _bump(self, s: Session, key: str, now: float, *, bounded: bool) -> bool:
        """Count one attempt on ``key`` in one statement (a new window if the old one passed);
        ``bounded``: only while under the limit. True when counted."""
        insert = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
        s.execute(
            insert(_TABLE)
            .values(id=key, count=0, window_start=now)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        passed = _TABLE.c.window_start <= now - self.window_s
        bump = (
            update(_TABLE)
            .where(_TABLE.c.id == key)
            .values(
                count=case((passed, 1), else_=_TABLE.c.count + 1),
                window_start=case((passed, now), else_=_TABLE.c.window_start),
            )
        )
        if bounded:
            # Checked by the database under the row's lock: concurrent reservations queue on
            # the row and each sees the count the one before left (SQLite and PostgreSQL).
            bump = bump.where(or_(passed, _TABLE.c.count < self._limit(key)))
        return s.execute(bump).rowcount == 1

    def _reached(self, s: Session, keys: tuple[str, ...]) -> bool:
        rows = s.execute(select(_TABLE.c.id, _TABLE.c.count).where(_TABLE.c.id.in_(keys)))
        return any(count >= self._limit(key) for key, count in rows)

    def reserve(self, *keys: str) -> Reservation:
        """Take one attempt from every key, all or none; refused (with the wait) when a key is
        at its limit. Blocking: call it in a thread."""
        now = self.clock()
        if next(self._reservations) % SWEEP_EVERY == 0:
            self.sweep()

        def attempt() -> bool | None:
            with self._write() as s:
                # Keys in one order, so that two reservations never wait on each other's rows.
                for key in sorted(keys):
                    if not self._bump(s, key, now, bounded=True):
                        s.rollback()  # all or none
                        return None
                return self._reached(s, keys)

        reached = retry_busy(attempt)
        if reached is None:
            return Reservation(keys, False, True, max(self.retry_after(*keys), 1.0))
        return Reservation(keys, True, reached)

    def release(self, reservation: Reservation, *, reset: str | None = None) -> None:
        """Give the reserved attempt back (the password was right); ``reset`` clears that key's
        count altogether (the account that just signed in)."""
        if not reservation.granted:
            return

        def attempt() -> None:
            with self._write() as s:
                back = [key for key in reservation.keys if key != reset]
                s.execute(
                    update(_TABLE)
                    .where(_TABLE.c.id.in_(back), _TABLE.c.count > 0)
                    .values(count=_TABLE.c.count - 1)
                )
                if reset is not None:
                    s.execute(delete(_TABLE).where(_TABLE.c.id == reset))

        retry_busy(attempt)

    def retry_after(self, *keys: str) -> float:
        now = self.clock()
        with self._private or nullcontext(), session_scope(self.engine) as s:
            rows = list(s.execute(select(_TABLE).where(_TABLE.c.id.in_(keys))))
        wait = 0.0
        for row in rows:
            left = row.window_start + self.window_s - now
            if left > 0 and row.count >= self._limit(row.id):
                wait = max(wait, left)
        return wait

    def failure(self, *keys: str) -> bool:
        """Count a failure whatever the limits; True when some key is now at its limit."""
        now = self.clock()

        def attempt() -> bool:
            with self._write() as s:
                for key in sorted(keys):
                    self._bump(s, key, now, bounded=False)
                return self._reached(s, keys)

        return retry_busy(attempt)

    def reset(self, key: str) -> None:
        def attempt() -> None:
            with self._write() as s:
                s.execute(delete(_TABLE).where(_TABLE.c.id == key))

        retry_busy(attempt)

    def sweep(self) -> None:
        """Delete the rows whose window has passed (they count nothing any more)."""
        cutoff = self.clock() - self.window_s

        def attempt() -> None:
            with self._write() as s:
                s.execute(delete(_TABLE).where(_TABLE.c.window_start <= cutoff))

        retry_busy(attempt)


def _private_engine() -> Engine:
    """An in-memory database holding only the attempts table, for a throttle given no engine
    (the schema of the real database is Alembic's; this one lives and dies with the object)."""
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    _TABLE.create(engine)
    return engine


def throttle_keys(email: str, client: str) -> tuple[str, str]:
    return f"acct:{email.strip().lower()[:320]}", f"ip:{client}"
