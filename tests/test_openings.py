"""interviewer/openings/ without the web: the CSV check (with Hypothesis), the shortlist rows,
decisions and their audit trail, exports that parse back, chart numbers. Real SQLite."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openings_support import seed_opening, staff
from web_support import make_settings

from interviewer import invites, openings
from interviewer.interview import NO_ANSWER_KEY, PRACTICE_ID
from interviewer.store.db import session_scope
from interviewer.store.models import (
    Answer,
    AnswerStatus,
    AuditLog,
    Interview,
    InterviewState,
    Opening,
)
from interviewer.voice.agent import NO_ANSWER_TIMEOUT_S
from interviewer.voice.session import Loaded, no_answer_timeout

# --- the CSV check ----------------------------------------------------------------------------


def _check(text: str | bytes, invited=()) -> openings.CsvCheck:
    data = text.encode() if isinstance(text, str) else text
    return openings.parse_applicants_csv(data, invited=invited)


def test_good_file_with_optional_columns_any_case_and_order() -> None:
    got = _check(
        "\ufeffEmail,Name,SEX,race_ethnicity,Age Band\r\n"
        "ada@example.org,Ada Lovelace,female,asian,30-39\r\n"
        '"bo@example.org","Bo, Jr.",,,\r\n'
    )
    assert got.errors == [] and got.ok
    ada, bo = got.rows
    assert (ada.row, ada.name, ada.sex, ada.race_ethnicity, ada.age_band) == (
        2,
        "Ada Lovelace",
        "Female",
        "Asian",
        "30-39",
    )
    assert (bo.row, bo.name, bo.sex) == (3, "Bo, Jr.", None)


def test_semicolon_file_from_a_european_spreadsheet() -> None:
    got = _check("name;email\nAda;ada@example.org\n")
    assert got.ok and got.rows[0].email == "ada@example.org"


def test_every_bad_row_is_reported_and_nothing_is_kept() -> None:
    got = _check(
        "name,email,sex\n"
        "Ada,ada@example.org,\n"
        ",nobody@example.org,\n"  # row 3: no name
        "Bo,not-an-email,\n"  # row 4
        "\n"  # row 5: blank, skipped but counted
        "Cy,ADA@example.org,\n"  # row 6: duplicate of row 2
        "Di,di@example.org,robot\n"  # row 7: unknown sex
        "Ed,ed@example.org\n",  # row 8: too few fields
        invited=["di@example.org"],
    )
    where = {(e.row, e.column) for e in got.errors}
    assert where == {
        (3, "name"),
        (4, "email"),
        (6, "email"),
        (7, "email"),
        (7, "sex"),
        (8, "row"),
    }
    text = {(e.row, e.column): e.message for e in got.errors}
    assert "row 2" in text[(6, "email")]
    assert "already invited" in text[(7, "email")]
    assert "Female, Male" in text[(7, "sex")]
    assert "2 fields but the header has 3" in text[(8, "row")]
    assert got.rows == [] and not got.ok


@pytest.mark.parametrize(
    ("data", "row", "column", "words"),
    [
        (b"", 1, "file", "empty"),
        (b"name,email\n", 1, "file", "no applicants"),
        (b"name,mail\nA,a@b.org\n", 1, "email", "no “email” column"),
        (b"name,email,phone\nA,a@b.org,1\n", 1, "phone", "unknown column"),
        (b"name,email,email\nA,a@b.org,a@b.org\n", 1, "email", "appears twice"),
        (b"name,email\nJos\xe9,j@b.org\n", 2, "file", "not UTF-8"),
        (b"PK\x03\x04\x14\x00\x06\x00", 1, "file", "not a CSV text file"),
        (b'name,email\n"A,a@b.org\n', 2, "row", "fields"),
    ],
)
def test_file_level_problems(data: bytes, row: int, column: str, words: str) -> None:
    got = _check(data)
    assert got.rows == []
    assert [(e.row, e.column) for e in got.errors][:1] == [(row, column)]
    assert words in got.errors[0].message


def test_huge_file_is_refused_unread() -> None:
    data = b"name,email\n" + b"A,a@example.org\n" * (openings.MAX_CSV_BYTES // 16 + 1)
    got = _check(data)
    assert len(got.errors) == 1 and "the limit is 1 MB" in got.errors[0].message
    many = "name,email\n" + "".join(
        f"A,a{i}@example.org\n" for i in range(openings.MAX_CSV_ROWS + 1)
    )
    got = _check(many)
    assert got.errors[0].row == openings.MAX_CSV_ROWS + 2 and "split it" in got.errors[0].message


def test_many_bad_rows_are_capped_but_counted() -> None:
    data = "name,email\n" + "A,bad\n" * (openings.MAX_ERRORS_SHOWN + 50)
    got = _check(data)
    assert len(got.errors) == openings.MAX_ERRORS_SHOWN
    assert got.total_errors == openings.MAX_ERRORS_SHOWN + 50


names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40
).filter(lambda s: s.strip())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(people=st.lists(names, min_size=1, max_size=12), dup=st.data())
def test_any_valid_file_round_trips_and_duplicates_are_caught(people, dup) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["name", "email"])
    for i, name in enumerate(people):
        writer.writerow([name, f"p{i}@example.org"])
    got = _check(buffer.getvalue())
    assert got.errors == []
    assert [r.name for r in got.rows] == [" ".join(n.split()) for n in people]
    assert [r.row for r in got.rows] == list(range(2, len(people) + 2))
    # the same file with one email repeated: exactly that row is reported, nothing kept
    j = dup.draw(st.integers(0, len(people) - 1))
    writer.writerow(["Again", f"P{j}@EXAMPLE.org"])
    got = _check(buffer.getvalue())
    assert [(e.row, e.column) for e in got.errors] == [(len(people) + 2, "email")]
    assert got.rows == []


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes_never_crash_and_errors_name_a_row(data: bytes) -> None:
    got = _check(data)
    assert got.ok or got.errors
    for e in got.errors:
        assert e.row >= 1 and e.column and e.message


@settings(max_examples=80, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list('name,email\n"\r;\tA@b.co x')), max_size=200))
def test_arbitrary_csv_like_text_never_crashes(text: str) -> None:
    got = _check(text)
    assert bool(got.rows) != bool(got.errors)


@settings(max_examples=40, deadline=None)
@given(encoding=st.sampled_from(["latin-1", "cp1252", "utf-16"]))
def test_other_encodings_are_a_clear_error(encoding: str) -> None:
    got = _check("name,email\nRenée Müller,r@example.org\n".encode(encoding))
    assert got.rows == []
    message = got.errors[0].message
    assert "UTF-8" in message or "not a CSV text file" in message


# --- the shortlist, decisions, exports ----------------------------------------------------------


@pytest.fixture
def seeded(tmp_path: Path):
    settings_ = make_settings(tmp_path)
    seed = seed_opening(
        settings_,
        [
            ("Ann", [0.9, 0.8]),
            ("Ben", [0.6, 0.7]),
            ("Cat", [0.6, 0.7]),  # ties with Ben
            ("Dan", None),  # invited only
            ("Eve", [0.2, 0.1]),
        ],
        top_n=2,
        flags={"Eve": ["high", "warning"], "Ann": ["info"]},
    )
    return settings_, seed


def test_shortlist_ranks_ties_and_separates_incomplete(seeded) -> None:
    _, seed = seeded
    with session_scope(seed.engine) as s:
        opening = s.get(Opening, seed.opening_id)
        sl = openings.load_shortlist(s, opening)
    assert [(r.name, r.rank, r.tied) for r in sl.ranked] == [
        ("Ann", 1, False),
        ("Ben", 2, True),
        ("Cat", 2, True),
        ("Eve", 4, False),
    ]
    assert [r.shortlisted for r in sl.ranked] == [True, True, True, False]  # tie across the cut
    assert all(r.low is not None and r.low <= r.score <= r.high for r in sl.ranked)
    assert sl.ranked[0].questions == pytest.approx([0.9, 0.8])
    assert [(r.name, r.status, r.rank) for r in sl.unranked] == [("Dan", "invited", None)]
    eve = sl.ranked[-1]
    assert eve.flagged and eve.integrity["high"] == 1 and eve.integrity["warning"] == 1
    assert not sl.ranked[0].flagged  # info only


def test_answered_counts_answers_not_scores(tmp_path: Path) -> None:
    """A finished interview reads 2/2 answered while its scoring is still running: the count is
    of questions answered (first attempt, not the practice one), never of questions scored."""
    seed = seed_opening(make_settings(tmp_path), [("Fay", []), ("Gus", [0.5])])
    with session_scope(seed.engine) as s:
        fay, gus = seed.ids["Fay"], seed.ids["Gus"]
        for interview_id, question_id, index, attempt, status in [
            (fay, PRACTICE_ID, -1, 0, AnswerStatus.answered),
            (fay, "q1", 0, 0, AnswerStatus.answered),
            (fay, "q1", 0, 1, AnswerStatus.answered),  # a follow-up: same question
            (fay, "q2", 1, 0, AnswerStatus.timed_out),
            (gus, "q2", 1, 0, AnswerStatus.no_answer),
        ]:
            s.add(
                Answer(
                    interview_id=interview_id,
                    question_id=question_id,
                    question_index=index,
                    attempt=attempt,
                    status=status,
                    transcript="",
                )
            )
    with session_scope(seed.engine) as s:
        sl = openings.load_shortlist(s, s.get(Opening, seed.opening_id))
    answered = {r.name: r.answered for r in sl.rows}
    assert answered == {"Fay": 2, "Gus": 1}  # a timed-out answer was answered; no_answer not
    assert all(v is None for v in sl.unranked[0].questions)  # Fay: nothing scored yet


def test_filters_and_sorts(seeded) -> None:
    _, seed = seeded
    with session_scope(seed.engine) as s:
        opening = s.get(Opening, seed.opening_id)

        def names(**query: str) -> list[str]:
            sl = openings.load_shortlist(s, opening, openings.Filters.from_query(query))
            return [r.name for r in sl.rows]

        assert names(flagged="yes") == ["Eve"]
        assert names(status="invited") == ["Dan"]
        assert names(sort="name", order="desc") == ["Eve", "Cat", "Ben", "Ann", "Dan"]
        assert names(sort="flags", order="desc")[0] == "Eve"
        assert names(sort="flags")[-2:] == ["Eve", "Dan"]  # unranked rows stay after ranked
        assert names(status="bogus", sort="nonsense") == ["Ann", "Ben", "Cat", "Eve", "Dan"]
        assert names(sort="score") == ["Eve", "Ben", "Cat", "Ann", "Dan"]  # no score: last
        assert names(sort="score", order="desc") == ["Ann", "Ben", "Cat", "Eve", "Dan"]
        admin = staff(s, "admin")
        openings.record_decision(s, admin, opening, seed.ids["Ben"], "hold", "ask again")
        assert names(decision="hold") == ["Ben"]
        assert names(decision="none") == ["Ann", "Cat", "Eve", "Dan"]
        assert names(status="decided") == ["Ben"]


def test_decisions_are_audited_with_note_and_previous(seeded) -> None:
    _, seed = seeded
    with session_scope(seed.engine) as s:
        opening = s.get(Opening, seed.opening_id)
        rec = staff(s, "recruiter", opening=opening)
        openings.record_decision(s, rec, opening, seed.ids["Ann"], "shortlist", " strong ")
        openings.record_decision(s, rec, opening, seed.ids["Ann"], "reject", "changed mind")
        with pytest.raises(LookupError):
            openings.record_decision(s, rec, opening, 99_999, "reject")
        with pytest.raises(openings.UserError):
            openings.record_decision(s, rec, opening, seed.ids["Ann"], "hire")
    with session_scope(seed.engine) as s:
        assert s.get(Interview, seed.ids["Ann"]).decision == "reject"
        logs = s.query(AuditLog).filter(AuditLog.action == "decision").order_by(AuditLog.id)
        details = [(a.user_id, a.detail["decision"], a.detail["previous"], a.detail["note"])
                   for a in logs]  # fmt: skip
        assert details == [
            (rec.id, "shortlist", None, "strong"),
            (rec.id, "reject", "shortlist", "changed mind"),
        ]
        trail = openings.history(s, s.get(Opening, seed.opening_id))
        assert [(h.action, h.applicant, h.detail.get("decision")) for h in trail[:2]] == [
            ("decision", "Ann", "reject"),
            ("decision", "Ann", "shortlist"),
        ]
        sl = openings.load_shortlist(s, s.get(Opening, seed.opening_id))
        assert sl.ranked[0].decision_note == "changed mind"


def test_exports_parse_back(seeded) -> None:
    _, seed = seeded
    with session_scope(seed.engine) as s:
        opening = s.get(Opening, seed.opening_id)
        openings.record_decision(s, staff(s, "admin"), opening, seed.ids["Eve"], "reject", "=1+1")
        sl = openings.load_shortlist(s, opening)
        text = openings.shortlist_csv(sl)
        payload = json.loads(openings.shortlist_json(sl))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["name"] for r in rows] == ["Ann", "Ben", "Cat", "Eve", "Dan"]
    assert [r["rank"] for r in rows] == ["1", "2", "2", "4", ""]
    ann = rows[0]
    assert float(ann["score"]) == pytest.approx(85.0)
    assert float(ann["interval_low"]) <= 85.0 <= float(ann["interval_high"])
    assert (ann["q1_q1"], ann["q2_q2"], ann["flags_info"]) == ("90.0", "80.0", "1")
    assert rows[3]["decision_note"] == "'=1+1"  # never run as a formula
    assert rows[4]["not_ranked_because"] == "not started"
    records = payload["candidates"]
    assert [r["name"] for r in records] == [r["name"] for r in rows]
    assert records[3]["flags_high"] == 1 and records[3]["decision"] == "reject"
    assert records[0]["interval_low"] <= records[0]["score"] <= records[0]["interval_high"]
    assert records[3]["decision_note"] == "=1+1"  # JSON is data, not a spreadsheet


def test_invite_links_rebuild_and_renew(seeded) -> None:
    settings_, seed = seeded
    with session_scope(seed.engine) as s:
        opening = s.get(Opening, seed.opening_id)
        links = {link.name: link for link in openings.invite_links(s, settings_, opening)}
        dan = links["Dan"]
        assert dan.token and invites.verify_invite(s, settings_, dan.token) == seed.ids["Dan"]
        assert links["Ann"].token is None and links["Ann"].used  # completed: link spent
        new = openings.renew_link(s, settings_, staff(s, "admin"), opening, dan.invite_id)
        assert new != dan.token
        assert invites.verify_invite(s, settings_, new) == seed.ids["Dan"]
        with pytest.raises(invites.InviteForged):
            invites.verify_invite(s, settings_, dan.token)
        text = openings.links_csv(
            openings.invite_links(s, settings_, opening), lambda t: f"http://x/i/{t}"
        )
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(text))}
    assert rows["Dan"]["link"] == f"http://x/i/{new}" and rows["Ann"]["link"] == ""


def test_distributions(seeded) -> None:
    _, seed = seeded
    with session_scope(seed.engine) as s:
        sl = openings.load_shortlist(s, s.get(Opening, seed.opening_id))
    overall, per_q = openings.distributions(sl)
    assert overall.n == 4 and sum(b.count for b in overall.bins) == 4
    assert [b.count for b in overall.bins if b.count] == [1, 2, 1]
    assert len(per_q) == 2 and per_q[0].n == 4
    assert openings.histogram([0.0, 1.0, 0.999])[-1].count == 2


def test_create_opening_from_the_form(tmp_path: Path) -> None:
    settings_ = make_settings(tmp_path)
    seed = seed_opening(settings_, [])
    with session_scope(seed.engine) as s:
        versions = openings.bank_versions(s)
        bad, errors = openings.parse_opening_form(
            {
                "title": " ",
                "bank_version_id": "999",
                "shortlist_top_n": "0",
                "shortlist_threshold": "abc",
                "retention_days": "",
                "voice": "kokoro",
            },
            versions,
        )
        assert bad is None
        assert set(errors) == {
            "title",
            "bank_version_id",
            "shortlist_top_n",
            "shortlist_threshold",
            "retention_days",
            "voice",
        }
        good, errors = openings.parse_opening_form(
            {
                "title": "Dermatologist reviewer",
                "bank_version_id": str(versions[0].id),
                "shortlist_top_n": "5",
                "shortlist_threshold": "62.5",
                "retention_days": "90",
                "silence_threshold_s": "1.5",
                "require_fullscreen": "on",
            },
            versions,
        )
        assert errors == {}
        rec = staff(s, "recruiter")
        opening = openings.create_opening(s, rec, good)
        again = openings.create_opening(s, rec, good)
        assert (opening.slug, again.slug) == ("dermatologist-reviewer", "dermatologist-reviewer-2")
        assert opening.shortlist_threshold == 0.625 and opening.retention_days == 90
        assert opening.settings == {"proctoring": {"require_fullscreen": True}}
        assert [o.id for o in openings.visible_openings(s, rec)] == [again.id, opening.id]
        other = staff(s, "recruiter", email="other@example.org")
        assert openings.visible_openings(s, other) == []
        openings.assign(s, rec, opening, other.id)
        assert [o.id for o in openings.visible_openings(s, other)] == [opening.id]
        openings.unassign(s, rec, opening, other.id)
        assert openings.visible_openings(s, other) == []


def test_an_openings_voice_from_the_form(tmp_path: Path) -> None:
    """The form offers the voices; the choice lives in the opening's settings (none: the
    server's default), is edited and audited like the other fields, and is what the bank
    editor's Listen uses when the bank's openings agree."""
    from interviewer.openings.manage import bank_voice

    seed = seed_opening(make_settings(tmp_path), [])
    form = {"title": "Voice", "retention_days": "30", "voice": "espeak"}
    with session_scope(seed.engine) as s:
        versions = openings.bank_versions(s)
        data, errors = openings.parse_opening_form(
            {**form, "bank_version_id": str(versions[0].id)}, versions
        )
        assert errors == {} and data is not None
        rec = staff(s, "recruiter")
        bank_id = versions[0].bank_id
        assert bank_voice(s, bank_id) is None  # the seeded opening chose none
        opening = openings.create_opening(s, rec, data)
        assert opening.settings["voice"] == "espeak"
        assert openings.opening_form(opening)["voice"] == "espeak"
        assert bank_voice(s, bank_id) is None  # two openings, two voices: the default
        seeded = s.get(Opening, seed.opening_id)
        seeded.settings = {**(seeded.settings or {}), "voice": "espeak"}
        s.flush()
        assert bank_voice(s, bank_id) == "espeak"
        data.voice = ""
        changed = openings.update_opening(s, rec, opening, data)
        assert changed["voice"] == ["espeak", ""]
        assert "voice" not in s.get(Opening, opening.id).settings
        assert s.get(Opening, opening.id).settings["proctoring"] == {"require_fullscreen": False}


def test_the_service_on_sqlite_and_postgresql(db_url: str, tmp_path: Path) -> None:
    cfg = make_settings(tmp_path, database_url=db_url)
    seed = seed_opening(
        cfg,
        [("Ann", [0.9, 0.8]), ("Ben", [0.5, 0.5]), ("Cy", []), ("Dan", None)],
        top_n=1,
        flags={"Ben": ["warning", "info"]},
        demographics={"Ann": ("Female", "Asian"), "Ben": ("Male", "Asian")},
    )
    with session_scope(seed.engine) as s:
        opening = s.get(Opening, seed.opening_id)
        rec = staff(s, "recruiter", opening=opening)
        spare = staff(s, "recruiter", email="spare@example.org")
        (card,) = openings.cards(s, openings.visible_openings(s, rec))
        assert (card.invited, card.completed, card.scored) == (4, 3, 2)
        assert card.recruiters == [rec.name]
        assert [u.id for u in openings.assignable(s, opening.id)] == [spare.id]
        assert openings.unique_slug(s, "Derm reviewer!") == "derm-reviewer-2"
        openings.record_decision(s, rec, opening, seed.ids["Ben"], "hold", "call back")
        flagged = openings.load_shortlist(s, opening, openings.Filters(flagged="yes"))
        assert [(r.name, r.decision, r.decision_note) for r in flagged.rows] == [
            ("Ben", "hold", "call back")
        ]
        rows = openings.load_shortlist(s, opening).rows
        assert [(r.name, r.status) for r in rows] == [
            ("Ann", "scored"),
            ("Ben", "decided"),
            ("Cy", "completed"),
            ("Dan", "invited"),
        ]
        assert [h.action for h in openings.history(s, opening)] == ["decision"]
        links = openings.invite_links(s, cfg, opening)
        assert [link.name for link in links if link.token] == ["Dan"]
        audit = openings.load_audit(s, opening)
        assert audit.row("sex", "Male").selection_impact_ratio == 0.0
        assert openings.invited_emails(s, opening.id) >= {"ann@example.org", "dan@example.org"}


def test_the_wait_for_an_answer_is_set_per_opening(tmp_path: Path) -> None:
    settings_ = make_settings(tmp_path)
    seed = seed_opening(settings_, [])
    form = {
        "title": "Thoughtful experts",
        "retention_days": "90",
        "require_fullscreen": "on",
    }
    with session_scope(seed.engine) as s:
        versions = openings.bank_versions(s)
        form["bank_version_id"] = str(versions[0].id)
        bad, errors = openings.parse_opening_form({**form, NO_ANSWER_KEY: "2"}, versions)
        assert bad is None and set(errors) == {NO_ANSWER_KEY}
        good, errors = openings.parse_opening_form({**form, NO_ANSWER_KEY: "45"}, versions)
        assert errors == {} and good is not None
        rec = staff(s, "recruiter")
        opening = openings.create_opening(s, rec, good)
        assert opening.settings[NO_ANSWER_KEY] == 45.0
        assert openings.opening_form(opening)[NO_ANSWER_KEY] == "45"
        loaded = Loaded(1, None, {}, InterviewState.in_progress, 1.2, None, opening.settings)  # type: ignore[arg-type]
        assert no_answer_timeout(loaded) == 45.0
        # cleared on the edit form: the server's default again
        blank, _ = openings.parse_opening_form({**form, NO_ANSWER_KEY: ""}, versions)
        changed = openings.update_opening(s, rec, opening, blank)
        assert changed[NO_ANSWER_KEY] == ["45", ""]
        opening = s.get(Opening, opening.id)
        assert NO_ANSWER_KEY not in opening.settings
        assert opening.settings["proctoring"] == {"require_fullscreen": True}
        loaded = Loaded(1, None, {}, InterviewState.in_progress, 1.2, None, opening.settings)  # type: ignore[arg-type]
        assert no_answer_timeout(loaded) == NO_ANSWER_TIMEOUT_S == 30.0
