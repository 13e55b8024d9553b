"""How many interviews one process runs at once, and a fair line for the others.

Past the number of interviews a machine can carry (``bench/load.py`` finds it), every extra
interview makes every other one slower: answers wait longer for their transcript, replies come
late, and an applicant who talks on over a late question loses words. So the embedded server
takes at most ``INTERVIEWER_MAX_LIVE_INTERVIEWS`` at once (0: no limit) and lines up the rest,
first come first served. Whoever waits is told so honestly, with their place in line, every
few seconds; nothing is recorded while they wait, so nothing can be lost. (The LiveKit worker
gets the same from ``interviewer worker --max-interviews``: LiveKit holds the room.)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass(eq=False)
class Ticket:
    number: int
    granted: asyncio.Event = field(default_factory=asyncio.Event)


def busy_message(position: int) -> str:
    ahead = "1 person is" if position == 1 else f"{position} people are"
    return (
        "All interviewers are busy right now. Please stay on this page: your place is kept "
        f"({ahead} ahead of you) and your interview starts by itself as soon as one is free."
    )


class Admission:
    """At most ``limit`` holders at once (0: unlimited); the others wait in FIFO order."""

    def __init__(self, limit: int = 0) -> None:
        self.limit = max(0, int(limit))
        self.running: set[Ticket] = set()
        self.waiting: list[Ticket] = []
        self._numbers = itertools.count(1)

    def position(self, ticket: Ticket) -> int:
        """How many are ahead of a waiting ticket (1: next)."""
        return self.waiting.index(ticket) + 1 if ticket in self.waiting else 0

    async def wait_turn(
        self,
        on_wait: Callable[[int], None] | None = None,
        *,
        until: Iterable[asyncio.Future[object]] = (),
        notify_every_s: float = 6.0,
    ) -> Ticket | None:
        """A running slot; ``on_wait(position)`` is called at once and every ``notify_every_s``
        while in line. None when one of ``until`` finishes first (the applicant left)."""
        ticket = Ticket(next(self._numbers))
        if not self.limit or (len(self.running) < self.limit and not self.waiting):
            self.running.add(ticket)
            return ticket
        self.waiting.append(ticket)
        stops = list(until)
        try:
            while not ticket.granted.is_set():
                if on_wait is not None:
                    on_wait(self.position(ticket))
                granted = asyncio.ensure_future(ticket.granted.wait())
                try:
                    done, _ = await asyncio.wait(
                        {granted, *stops},
                        timeout=notify_every_s,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    granted.cancel()
                if any(s in done for s in stops) and not ticket.granted.is_set():
                    return None
            return ticket
        except BaseException:
            self.release(ticket)  # cancelled just as its turn came: pass the slot on
            raise
        finally:
            if not ticket.granted.is_set():
                with contextlib.suppress(ValueError):
                    self.waiting.remove(ticket)

    def release(self, ticket: Ticket | None) -> None:
        """The interview ended (or its page left): the next in line starts."""
        if ticket is None or ticket not in self.running:
            return
        self.running.discard(ticket)
        while self.waiting and len(self.running) < self.limit:
            nxt = self.waiting.pop(0)
            self.running.add(nxt)
            nxt.granted.set()
