"""Background work yields the CPU to live interviews.

On a small machine the scoring worker (a 1.5B-parameter model) and the integrity analysis
compete for the same cores as the interviews in progress (whisper, the VAD, the voice). An
applicant waiting for the next question notices every tenth of a second; a recruiter reading
scores a minute later does not. So the background processes lower their own scheduling
priority (Unix niceness) when they start: they still get every idle cycle, and their backlog
grows instead of the applicants' turn latency when the machine is busy (bench/load.py).
"""

from __future__ import annotations

import logging
import os

from interviewer.config import get_settings

log = logging.getLogger(__name__)


def lower_priority(increment: int | None = None) -> int:
    """Add ``increment`` (default ``INTERVIEWER_BACKGROUND_NICENESS``) to this process's
    niceness and return the new value; where the OS refuses, log it and carry on at the
    current priority (slower interviews are better than no scores)."""
    step = get_settings().background_niceness if increment is None else increment
    try:
        return os.nice(step)
    except (AttributeError, OSError) as err:  # no os.nice (Windows), or not permitted
        log.warning("could not lower this background process's priority: %s", err)
        return os.nice(0) if hasattr(os, "nice") else 0
