"""Recruiters' openings (being split into modules by concern; for now all in shortlist.py)."""

from interviewer.openings.shortlist import *  # noqa: F403
