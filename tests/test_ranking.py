"""Ranking: ties at the displayed precision, bootstrap intervals, shortlists, unranked interviews.

The pure function is tested on plain data; the loader on both database engines.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from interviewer.banks.model import Bank
from interviewer.errors import UserError
from interviewer.scoring.ranking import (
    Candidate,
    ShortlistRule,
    bootstrap_interval,
    display_score,
    integrity_summary,
    load_ranking,
    rank,
)
from interviewer.store import repo
from interviewer.store.db import session_scope
from interviewer.store.models import Answer, IntegrityEvent, InterviewState


def cand(i: int, score: float | None, qs=(), state: str = "completed", **kw) -> Candidate:
    return Candidate(
        interview_id=i,
        applicant_id=100 + i,
        name=f"A{i}",
        state=state,
        score=score,
        question_scores=tuple(qs),
        **kw,
    )


def test_ties_at_displayed_precision_share_the_best_rank() -> None:
    ranking = rank(
        [
            cand(1, 0.7),
            cand(2, 0.8004),  # displays 80.0
            cand(3, 0.7996),  # displays 80.0 too: tied with 2
            cand(4, 0.8006),  # displays 80.1: alone, first
            cand(5, 0.7),
        ]
    )
    got = [(r.interview_id, r.rank, r.tied) for r in ranking.ranked]
    assert got == [(4, 1, False), (2, 2, True), (3, 2, True), (1, 4, True), (5, 4, True)]
    assert display_score(0.8004) == display_score(0.7996) == "80.0"
    assert display_score(0.8006) == "80.1"


def test_top_n_takes_the_whole_tied_group_at_the_cut() -> None:
    candidates = [cand(1, 0.9), cand(2, 0.8), cand(3, 0.8), cand(4, 0.7)]
    ranking = rank(candidates, ShortlistRule(top_n=2))
    assert [r.interview_id for r in ranking.shortlisted] == [1, 2, 3]
    assert [r.rank for r in ranking.ranked] == [1, 2, 2, 4]


def test_threshold_and_both_rules() -> None:
    candidates = [cand(1, 0.9), cand(2, 0.8), cand(3, 0.79949), cand(4, 0.6)]
    # 0.79949 displays 79.9: below a threshold of 0.8 (80.0), so not shortlisted.
    by_threshold = rank(candidates, ShortlistRule(threshold=0.8))
    assert [r.interview_id for r in by_threshold.shortlisted] == [1, 2]
    both = rank(candidates, ShortlistRule(top_n=3, threshold=0.85))
    assert [r.interview_id for r in both.shortlisted] == [1]
    both_loose = rank(candidates, ShortlistRule(top_n=1, threshold=0.5))
    assert [r.interview_id for r in both_loose.shortlisted] == [1]
    nobody = rank(candidates, ShortlistRule())
    assert nobody.shortlisted == []
    assert ShortlistRule(top_n=3, threshold=0.85).describe() == "top 3 and score ≥ 85.0"
    assert ShortlistRule().describe() == "no shortlisting rule"


def test_rule_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ShortlistRule(top_n=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ShortlistRule(threshold=80)


def test_incomplete_interviews_are_listed_after_and_never_shortlisted() -> None:
    ranking = rank(
        [
            cand(1, 0.5),
            cand(2, 0.99, state="in_progress"),  # a partial score must not rank
            cand(3, None, state="completed"),
            cand(4, None, state="abandoned"),
            cand(5, None, state="invited"),
        ],
        ShortlistRule(top_n=10),
    )
    assert [r.interview_id for r in ranking.ranked] == [1]
    assert [(u.interview_id, u.reason) for u in ranking.unranked] == [
        (3, "completed, not scored yet"),
        (4, "abandoned"),
        (2, "in progress"),
        (5, "not started"),
    ]
    rows = ranking.rows()
    assert [row["rank"] for row in rows] == [1, None, None, None, None]
    assert [row["shortlisted"] for row in rows] == [True, False, False, False, False]


def test_bootstrap_interval_is_seeded_and_sensible() -> None:
    scores = [0.2, 0.9, 0.6, 0.7, 0.4]
    a = bootstrap_interval(scores, seed=3)
    assert a == bootstrap_interval(scores, seed=3)
    assert a != bootstrap_interval(scores, seed=4)
    low, high = a
    assert min(scores) <= low < np.mean(scores) < high <= max(scores)
    # Independent check of the percentile method with the same draws.
    rng = np.random.default_rng(3)
    means = np.asarray(scores)[rng.integers(0, 5, size=(2000, 5))].mean(axis=1)
    assert (low, high) == pytest.approx(tuple(np.quantile(means, [0.05, 0.95])))
    # Wider confidence, wider interval; agreeing questions, no width; one question, no interval.
    low99, high99 = bootstrap_interval(scores, seed=3, confidence=0.99)
    assert low99 <= low and high99 >= high
    assert bootstrap_interval([0.5, 0.5, 0.5]) == (0.5, 0.5)
    assert bootstrap_interval([0.5]) is None


def test_interval_does_not_depend_on_other_applicants() -> None:
    alone = rank([cand(7, 0.6, qs=[0.4, 0.6, 0.8])]).ranked[0]
    crowd = rank([cand(1, 0.9, qs=[0.9, 0.9]), cand(7, 0.6, qs=[0.4, 0.6, 0.8])]).ranked[1]
    assert (alone.low, alone.high) == (crowd.low, crowd.high)
    assert alone.low < 0.6 < alone.high


def test_interval_follows_a_weighted_score_and_overlaps_are_marked() -> None:
    ranking = rank(
        [
            cand(1, 0.90, qs=[0.85, 0.95, 0.9]),
            cand(2, 0.85, qs=[0.7, 1.0, 0.8]),  # wide: overlaps 1
            cand(3, 0.30, qs=[0.3, 0.3]),  # clear of 2
            cand(4, 0.50, qs=[0.2, 0.4]),  # weighted score 0.5 vs mean 0.3: interval shifted
        ]
    )
    by_id = {r.interview_id: r for r in ranking.ranked}
    assert by_id[2].overlaps_previous
    assert not by_id[1].overlaps_previous
    assert by_id[4].low == pytest.approx(0.4) and by_id[4].high == pytest.approx(0.6)
    assert not by_id[3].overlaps_previous
    assert by_id[1].questions == 3


def test_integrity_counts_are_shown_worst_first() -> None:
    ranking = rank([cand(1, 0.5, integrity={"info": 3, "high": 1})])
    counts = ranking.ranked[0].integrity
    assert counts == {"high": 1, "warning": 0, "info": 3}
    assert integrity_summary(counts) == "high 1 · info 3"
    assert integrity_summary({}) == ""
    row = ranking.rows()[0]
    assert (row["integrity_high"], row["integrity_warning"], row["integrity_info"]) == (1, 0, 3)
    json.dumps(ranking.to_json())


# --- the loader, on SQLite and PostgreSQL ------------------------------------------------------

BANK = {
    "id": "networks",
    "title": "Networks screen",
    "domain": "networking",
    "version": 1,
    "description": "Test bank.",
    "questions": [
        {
            "id": f"q{i}",
            "prompt": f"Question {i}?",
            "reference_answer": "An answer.",
            "rubric": {
                "criteria": [
                    {
                        "id": "c",
                        "description": "Says it.",
                        "weight": 1,
                        "levels": [
                            {"score": 0, "descriptor": "No."},
                            {"score": 1, "descriptor": "Yes."},
                        ],
                    }
                ]
            },
        }
        for i in range(3)
    ],
}


def seed_opening(session, people, **opening_opts):
    """``people``: (name, state, score, question scores, demographics, integrity severities)."""
    version = repo.publish_bank(session, Bank.model_validate(BANK))
    opening = repo.create_opening(
        session, slug="net-eng", title="Network engineer", bank_version=version, **opening_opts
    )
    ids = {}
    for name, state, score, qs, demographics, severities in people:
        applicant = repo.create_applicant(
            session, name=name, email=f"{name}@example.org", demographics=demographics
        )
        interview = repo.create_interview(session, opening=opening, applicant=applicant)
        interview.state = InterviewState(state)
        interview.score = score
        session.add(Answer(interview_id=interview.id, question_id="practice", question_index=-1))
        for index, q_score in enumerate(qs):
            session.add(
                Answer(
                    interview_id=interview.id,
                    question_id=f"q{index}",
                    question_index=index,
                    transcript="words",
                    score=q_score,
                )
            )
            # A follow-up answer: its score must not count as another question.
            session.add(
                Answer(
                    interview_id=interview.id,
                    question_id=f"q{index}",
                    question_index=index,
                    attempt=1,
                    transcript="more words",
                    score=0.0,
                )
            )
        for severity in severities:
            session.add(
                IntegrityEvent(interview_id=interview.id, kind="tab_hidden", severity=severity)
            )
        session.flush()
        ids[name] = interview.id
    return opening, ids


def test_load_ranking_from_the_database(db_engine) -> None:
    people = [
        ("ada", "completed", 0.8, [0.7, 0.8, 0.9], {"sex": "Female"}, ["high", "info", "info"]),
        ("bob", "completed", 0.6, [0.5, 0.6, 0.7], None, []),
        ("cy", "completed", 0.6, [0.6, 0.6, 0.6], None, ["warning"]),
        ("dee", "in_progress", None, [0.9], None, []),
        ("eve", "completed", None, [], None, []),
        ("fay", "completed", 0.4, [0.6, 0.6], None, []),  # q2 never answered: counts 0
    ]
    with session_scope(db_engine) as session:
        _, ids = seed_opening(session, people, shortlist_top_n=1)
    with session_scope(db_engine) as session:
        ranking = load_ranking(session, "net-eng")
        by_slug_top2 = load_ranking(session, "net-eng", top_n=2)
        with pytest.raises(UserError, match=r"no opening 'nope'.*net-eng"):
            load_ranking(session, "nope")
    assert ranking.opening == "net-eng"
    assert [(r.name, r.rank, r.tied, r.shortlisted) for r in ranking.ranked] == [
        ("ada", 1, False, True),
        ("bob", 2, True, False),
        ("cy", 2, True, False),
        ("fay", 4, False, False),
    ]
    ada, fay = ranking.ranked[0], ranking.ranked[3]
    assert (ada.questions, ada.answered, ada.interview_id) == (3, 3, ids["ada"])
    assert (fay.questions, fay.answered) == (3, 2)
    # Resampling (0.6, 0.6, 0): the interval reaches 0.6 and holds the score 0.4, unshifted.
    assert fay.low < 0.4 < fay.high == pytest.approx(0.6)
    assert ada.low < 0.8 < ada.high
    assert ada.integrity == {"high": 1, "warning": 0, "info": 2}
    assert ranking.ranked[2].low == ranking.ranked[2].high == pytest.approx(0.6)
    assert [(u.name, u.state) for u in ranking.unranked] == [
        ("eve", "completed"),
        ("dee", "in_progress"),
    ]
    assert [r.name for r in by_slug_top2.shortlisted] == ["ada", "bob", "cy"]


def test_weighted_bootstrap() -> None:
    scores, weights = [1.0, 0.0], [3.0, 1.0]
    low, high = bootstrap_interval(scores, weights=weights, seed=1)
    # Draws of two: (1,1) -> 1, (0,0) -> 0, mixed -> 3/4 either way; the weighted mean is 0.75.
    assert (low, high) == (0.0, 1.0)
    narrow = rank([cand(1, 0.75, qs=[1.0, 0.0, 1.0, 0.0], question_weights=[3, 1, 3, 1])])
    assert narrow.ranked[0].low < 0.75 < narrow.ranked[0].high


def test_rank_cli_table_json_csv_and_errors(db_engine, db_url, tmp_path) -> None:
    from typer.testing import CliRunner

    from interviewer.cli import app

    people = [
        ("ada", "completed", 0.8, [0.7, 0.8, 0.9], None, ["high"]),
        ("[bold]bob[/bold]", "completed", 0.6, [0.5, 0.7], None, []),
        ("cy", "abandoned", None, [], None, []),
    ]
    with session_scope(db_engine) as session:
        seed_opening(session, people, shortlist_threshold=0.7)
    runner = CliRunner(env={"COLUMNS": "160"})

    table = runner.invoke(app, ["rank", "net-eng", "--url", db_url])
    assert table.exit_code == 0, table.output
    assert "[bold]bob[/bold]" in table.output  # names are text, never markup
    assert "score ≥ 70.0" in table.output and "high 1" in table.output
    assert "Not ranked" in table.output and "abandoned" in table.output

    as_json = runner.invoke(app, ["rank", "net-eng", "--url", db_url, "--json", "--top", "1"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["rule"] == {"top_n": 1, "threshold": 0.7}
    assert [(c["name"], c["rank"], c["shortlisted"]) for c in data["candidates"]] == [
        ("ada", 1, True),
        ("[bold]bob[/bold]", 2, False),
        ("cy", None, False),
    ]

    out = tmp_path / "ranking.csv"
    written = runner.invoke(app, ["rank", "net-eng", "--url", db_url, "--csv", str(out)])
    assert written.exit_code == 0, written.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith("rank,tied,interview_id") and len(lines) == 4

    both = runner.invoke(app, ["rank", "net-eng", "--url", db_url, "--csv", "x", "--json"])
    assert both.exit_code == 1 and "not both" in both.output
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    unmigrated = runner.invoke(app, ["rank", "net-eng", "--url", empty])
    assert unmigrated.exit_code == 1
    assert "has no tables yet: run `interviewer db upgrade`" in unmigrated.output
    missing = runner.invoke(app, ["rank", "nope", "--url", db_url])
    assert missing.exit_code == 1
    assert missing.output.strip().splitlines() == [
        "no opening 'nope' in the database (openings: net-eng)"
    ]
