"""An opening's downloads: the shortlist as CSV or JSON, and the invite links as CSV.

The exports hold the page's columns plus the interval and the flag counts; a text cell that a
spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first) is prefixed with ``'``, in
every CSV written here (:mod:`interviewer.csvout`, the writer of every export).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from interviewer import csvout
from interviewer.openings.applicants import InviteLink
from interviewer.openings.shortlist import Shortlist
from interviewer.scoring import ranking


def export_columns(shortlist: Shortlist) -> list[str]:
    return [
        "rank",
        "tied",
        "interview_id",
        "name",
        "email",
        "status",
        "score",
        "interval_low",
        "interval_high",
        "answered",
        "questions",
        *(f"q{q.number}_{q.id}" for q in shortlist.questions),
        *(f"flags_{s}" for s in ranking.SEVERITIES),
        "shortlisted_by_rule",
        "decision",
        "decision_note",
        "not_ranked_because",
    ]


def export_records(shortlist: Shortlist) -> list[dict[str, Any]]:
    """The page's columns plus the interval and the flag counts, scores on the page's 0-100."""

    def pct(value: float | None) -> float | None:
        return None if value is None else round(value * 100, 1)

    records = []
    for r in shortlist.rows:
        values = [
            r.rank,
            r.tied,
            r.interview_id,
            r.name,
            r.email,
            r.status,
            pct(r.score),
            pct(r.low),
            pct(r.high),
            r.answered,
            len(shortlist.questions),
            *(pct(v) for v in r.questions),
            *(r.integrity.get(s, 0) for s in ranking.SEVERITIES),
            r.shortlisted,
            r.decision or "",
            r.decision_note,
            r.reason,
        ]
        records.append(dict(zip(export_columns(shortlist), values, strict=True)))
    return records


def shortlist_csv(shortlist: Shortlist) -> str:
    buffer = io.StringIO()
    writer = csvout.DictWriter(buffer, fieldnames=export_columns(shortlist), lineterminator="\r\n")
    writer.writeheader()
    for record in export_records(shortlist):
        writer.writerow({k: "" if v is None else v for k, v in record.items()})
    return buffer.getvalue()


def shortlist_json(shortlist: Shortlist) -> str:
    payload = {
        "opening": {
            "id": shortlist.opening.id,
            "slug": shortlist.opening.slug,
            "title": shortlist.opening.title,
        },
        "rule": shortlist.rule.describe(),
        "interval": f"{round(shortlist.confidence * 100)}% bootstrap over the questions",
        "scale": "0-100",
        "filters": shortlist.filters.query(),
        "questions": [asdict(q) for q in shortlist.questions],
        "candidates": export_records(shortlist),
    }
    return json.dumps(payload, ensure_ascii=False, indent=1)


def links_csv(links: Sequence[InviteLink], url_of: Any) -> str:
    """name,email,status,expires_at,link: ``url_of(token)`` makes the absolute link."""
    buffer = io.StringIO()
    writer = csvout.Writer(buffer, lineterminator="\r\n")
    writer.writerow(["name", "email", "status", "expires_at", "link"])
    for link in links:
        writer.writerow(
            [
                link.name,
                link.email,
                "completed" if link.used else ("expired" if link.expired else link.status),
                link.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                url_of(link.token) if link.token else "",
            ]
        )
    return buffer.getvalue()
