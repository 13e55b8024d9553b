"""The recruiter's applicant page over HTTP: who may see it, its media (with Range requests), its
exports, the compare view, and erasure from the page. Real SQLite, real files on disk."""

from __future__ import annotations

import csv
import io
import json
import re
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openings_support import PASSWORD, staff
from report_support import seed_report
from sqlalchemy import func, select
from web_support import make_settings, seed_interview, staff_login

from interviewer.openings import record_decision
from interviewer.store import repo
from interviewer.store.db import session_scope
from interviewer.store.models import Answer, AuditLog, IntegrityEvent, Interview, Opening
from interviewer.store.recordings import Recordings
from interviewer.web import create_app
from interviewer.web.live import VoiceOptions

NO_STORE = "private, no-store"


def login(client: TestClient, email: str) -> TestClient:
    return staff_login(client, email, PASSWORD)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("report-http")
    settings = make_settings(tmp)
    ada = seed_report(
        settings, email="ada@example.invalid", name="Ada Lovelace", score=0.8, red_flag=True
    )
    bob = seed_report(
        settings, email="bob@example.invalid", name="Bob Babbage", score=0.6, red_flag=None
    )
    eve = seed_report(
        settings, email="eve@example.invalid", name="Eve Other", slug="other-opening", camera=False
    )
    invited = seed_interview(settings, email="ivan@example.invalid", slug="web-report")
    with session_scope(ada.seeded.engine) as s:
        opening = s.get(Opening, ada.opening_id)
        other = s.get(Opening, eve.opening_id)
        rita = staff(s, "recruiter", email="rita@example.org", opening=opening, name="Rita")
        record_decision(s, rita, opening, ada.interview_id, "hold", "Check the trunk answer.")
        repo.audit(  # as proctoring.analyze records a run with the face detector missing
            s,
            None,
            "integrity_analysis",
            f"interview:{ada.interview_id}",
            skipped={"faces": "no face detector"},
            frames_sampled=0,
            answers_analyzed=3,
        )
        staff(s, "recruiter", email="oscar@example.org", opening=other)
        staff(s, "admin", email="root@example.org")
        staff(s, "domain_lead", email="dora@example.org")
    app = create_app(settings, voice=VoiceOptions(warm_up=False))
    with TestClient(app) as anon:
        clients = {"anon": anon}
        for name, email in (
            ("rita", "rita@example.org"),
            ("oscar", "oscar@example.org"),
            ("root", "root@example.org"),
            ("dora", "dora@example.org"),
        ):
            c = TestClient(app)
            c.__enter__()
            clients[name] = login(c, email)
        try:
            yield {
                "settings": settings,
                "ada": ada,
                "bob": bob,
                "eve": eve,
                "invited": invited,
                **clients,
            }
        finally:
            for name in ("rita", "oscar", "root", "dora"):
                clients[name].__exit__(None, None, None)


def _page(site: dict[str, Any], who: str = "ada") -> str:
    r = site[who]
    return f"/openings/{r.opening_id}/applicants/{r.interview_id}"


def test_applicant_page_shows_everything(site) -> None:
    ada = site["ada"]
    page = site["rita"].get(_page(site))
    assert page.status_code == 200, page.text
    text = page.text
    assert "Ada Lovelace" in text and "ada@example.invalid" in text
    # the transcript as timed words, the first word at its start time
    first = ada.words["colour"][0]
    assert f'data-s="{first["start"]}"' in text and ">My</span>" in text
    # the quoted evidence seeks into that answer's audio
    quote = re.search(r'class="quote" data-answer="(\d+)" data-start="([\d.]+)"', text)
    assert quote and int(quote.group(1)) == ada.answer_ids["colour"]
    # audio, camera and thumbnail come through the authorised routes, by ids
    assert f"/media/answers/{ada.answer_ids['colour']}" in text
    assert "/media/camera/1" in text and 'data-video-offset="' in text
    assert f"/media/events/{ada.event_ids['no_face']}" in text
    # integrity: both events, severities, the timeline strip
    assert "tab hidden" in text and "no face" in text and 'class="strip"' in text
    assert "high 1" in text and "warning 1" in text
    # score with interval, rank, a link back to the shortlist
    assert 'id="interview-score">80.0<' in text and "90% interval" in text
    assert f'href="/openings/{ada.opening_id}#d-{ada.interview_id}"' in text
    # the decision made on the shortlist, and its history entry with the note and who
    assert 'id="decision">hold<' in text
    assert "Decision: <strong>hold</strong> — “Check the trunk answer.”" in text
    assert "by Rita" in text
    # what the server checks covered, and what they could not check
    assert "Server checks after the interview: 3 answers, 0 camera frames." in text
    assert "Not run: faces (no face detector)" in text
    bob = site["rita"].get(_page(site, "bob")).text
    assert "they may not have run yet" in bob
    # criteria with their level on their own scale, and the raised red flag with its quote
    assert "Names one colour and says why." in text and "1.6 / 2" in text
    assert "Red flags" in text and "Says elephants are small." in text
    assert 'class="quote flag"' in text
    assert site["root"].get(_page(site)).status_code == 200  # admin too


def test_an_interview_not_taken_yet_has_a_page_and_exports(site) -> None:
    ada, invited = site["ada"], site["invited"]
    page = f"/openings/{ada.opening_id}/applicants/{invited.interview_id}"
    response = site["rita"].get(page)
    assert response.status_code == 200
    assert response.text.count("Not answered.") == 2 and "not scored yet" in response.text
    report = site["rita"].get(page + "/report.json").json()
    assert report["interview"]["state"] == "invited"
    assert [q["answers"] for q in report["questions"]] == [[], []]
    assert site["rita"].get(page + "/report.csv").status_code == 200
    assert site["rita"].get(page + "/personal-data").status_code == 200


def test_who_may_see_the_page_and_its_media(site) -> None:
    ada, eve = site["ada"], site["eve"]
    page = _page(site)
    audio = f"{page}/media/answers/{ada.answer_ids['colour']}"
    urls = [page, audio, f"{page}/media/camera/1", f"{page}/report.json", f"{page}/report.csv"]
    anon = site["anon"].get(page, follow_redirects=False)
    assert anon.status_code == 303 and anon.headers["location"].startswith("/login?next=")
    assert site["anon"].get(audio).status_code == 401
    for url in urls:
        assert site["oscar"].get(url).status_code == 404, url  # recruiter of another opening
        assert site["dora"].get(url).status_code == 403, url  # domain lead
    # an export link opened while signed out leads to the sign-in page
    export = site["anon"].get(f"{page}/report.json", follow_redirects=False)
    assert export.status_code == 303 and "/login?next=" in export.headers["location"]
    # an interview of another opening, addressed through this opening: 404
    assert (
        site["rita"].get(f"/openings/{ada.opening_id}/applicants/{eve.interview_id}").status_code
        == 404
    )
    # an answer of another interview, addressed through this one: 404
    other_answer = f"{page}/media/answers/{site['bob'].answer_ids['colour']}"
    assert site["rita"].get(other_answer).status_code == 404
    assert (
        site["rita"].get(f"{page}/media/events/{site['bob'].event_ids['no_face']}").status_code
        == 404
    )
    # the interview's own media that is not stored: 410, saying so
    missing = site["rita"].get(f"{page}/media/camera/7")
    assert missing.status_code == 410 and "no camera recording" in missing.json()["error"]


def test_audio_supports_ranges_and_is_never_cached(site) -> None:
    ada = site["ada"]
    wav = Recordings(site["settings"].recordings_dir).answer_audio(ada.interview_id, "colour")
    data = wav.read_bytes()
    url = f"{_page(site)}/media/answers/{ada.answer_ids['colour']}"
    rita = site["rita"]
    whole = rita.get(url)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == "audio/wav"
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["cache-control"].startswith(NO_STORE)
    part = rita.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == data[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(data)}"
    assert part.headers["cache-control"].startswith(NO_STORE)
    tail = rita.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    rest = rita.get(url, headers={"Range": f"bytes={len(data) - 5}-"})
    assert rest.content == data[-5:]
    # several ranges, or a unit we do not know: the whole file (RFC 9110 allows it)
    for header in ("bytes=0-1,5-9", "items=0-5", "bytes=abc"):
        other = rita.get(url, headers={"Range": header})
        assert other.status_code == 200 and other.content == data, header
    past_end = rita.get(url, headers={"Range": f"bytes=10-{len(data) + 1000}"})
    assert past_end.status_code == 206 and past_end.content == data[10:]
    beyond = rita.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"


def test_camera_is_its_chunks_in_order_with_ranges_across_them(site) -> None:
    ada = site["ada"]
    chunks = sorted(p for p in ada.files if p.suffix == ".webm")
    data = b"".join(p.read_bytes() for p in chunks)
    url = f"{_page(site)}/media/camera/1"
    whole = site["rita"].get(url)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == "video/webm"
    boundary = chunks[0].stat().st_size
    across = site["rita"].get(url, headers={"Range": f"bytes={boundary - 7}-{boundary + 6}"})
    assert across.status_code == 206 and across.content == data[boundary - 7 : boundary + 7]
    thumb = site["rita"].get(f"{_page(site)}/media/events/{ada.event_ids['no_face']}")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.content[:3] == b"\xff\xd8\xff"
    assert thumb.headers["cache-control"].startswith(NO_STORE)


def test_exports_parse_back(site) -> None:
    ada = site["ada"]
    raw = site["rita"].get(f"{_page(site)}/report.json")
    assert raw.status_code == 200 and "attachment" in raw.headers["content-disposition"]
    assert raw.headers["cache-control"].startswith(NO_STORE)
    report = json.loads(raw.text)
    colour = next(q for q in report["questions"] if q["question_id"] == "colour")
    assert colour["answers"][0]["words"] == [
        {k: w[k] for k in ("word", "start", "end", "probability")} for w in ada.words["colour"]
    ]
    assert colour["criteria"][0]["evidence"][0]["start"] is not None
    assert report["integrity"]["counts"] == {
        "no_face": {"high": 1},
        "tab_hidden": {"warning": 1},
    }
    assert [e["kind"] for e in report["integrity"]["timeline"]] == ["tab_hidden", "no_face"]
    table = site["rita"].get(f"{_page(site)}/report.csv")
    assert table.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    head = rows[0]
    assert head["record"] == "interview" and head["rank"] == "1" and head["status"] == "completed"
    assert float(head["low"]) <= float(head["score"]) == 0.8 <= float(head["high"])
    answers = [r for r in rows if r["record"] == "answer"]
    assert [r["question_id"] for r in answers] == ["practice", "colour", "animal"]
    words = [r for r in rows if r["record"] == "word" and r["question_id"] == "colour"]
    assert [r["text"] for r in words] == [w["word"] for w in ada.words["colour"]]
    assert float(words[0]["start"]) == ada.words["colour"][0]["start"]
    counts = {
        (r["item_id"], r["severity"]): r["count"] for r in rows if r["record"] == "integrity_count"
    }
    with session_scope(ada.seeded.engine) as s:
        logged = s.scalars(
            select(AuditLog.detail).where(
                AuditLog.action == "report.export",
                AuditLog.target == f"interview:{ada.interview_id}",
            )
        ).all()
    assert {d["format"] for d in logged} == {"json", "csv"}
    assert counts == {("no_face", "high"): "1", ("tab_hidden", "warning"): "1"}


def test_compare_side_by_side(site) -> None:
    ada, bob, eve = site["ada"], site["bob"], site["eve"]
    base = f"/openings/{ada.opening_id}/compare"
    page = site["rita"].get(f"{base}?i={ada.interview_id}&i={bob.interview_id}")
    assert page.status_code == 200
    table = page.text.split('id="compare-table"', 1)[1]
    assert table.index("Ada Lovelace") < table.index("Bob Babbage")
    assert "What is your favourite colour?" in table and "Describe an elephant." in table
    assert table.count('class="best"') == 2  # Ada's colour and animal scores are the higher
    assert table.count("red flag: tiny") == 1  # Ada's, not Bob's
    bob_page = site["rita"].get(_page(site, "bob")).text
    assert "No red flag raised. Checked, below 50%: Says elephants are small. (20%)" in bob_page
    one = site["rita"].get(f"{base}?i={ada.interview_id}")
    assert one.status_code == 400 and "between 2 and 4" in one.text
    foreign = site["rita"].get(f"{base}?i={ada.interview_id}&i={eve.interview_id}")
    assert foreign.status_code == 404
    assert site["oscar"].get(f"{base}?i={ada.interview_id}&i={bob.interview_id}").status_code == 404
    assert site["rita"].get(base).status_code == 200  # the picker alone


@pytest.fixture
def fresh(tmp_path: Path):
    settings = make_settings(tmp_path)
    ada = seed_report(settings, email="ada@example.invalid", name="Ada Lovelace")
    bob = seed_report(settings, email="bob@example.invalid", name="Bob Babbage")
    with session_scope(ada.seeded.engine) as s:
        staff(s, "recruiter", email="rita@example.org", opening=s.get(Opening, ada.opening_id))
    app = create_app(settings, voice=VoiceOptions(warm_up=False))
    with TestClient(app) as client:
        yield settings, ada, bob, login(client, "rita@example.org")


def test_delete_from_the_page_needs_csrf_and_confirmation(fresh) -> None:
    _, ada, bob, client = fresh
    page = f"/openings/{ada.opening_id}/applicants/{ada.interview_id}"
    form = client.get(f"{page}/personal-data")
    assert form.status_code == 200 and 'name="confirm"' in form.text
    purge_on = (datetime.now(UTC) + timedelta(days=180)).date().isoformat()
    assert f"on {purge_on} for this one" in form.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    no_token = client.post(f"{page}/personal-data/delete", data={"confirm": "ada@example.invalid"})
    assert no_token.status_code == 403
    wrong = client.post(
        f"{page}/personal-data/delete", data={"confirm": "bob@example.invalid", "csrf_token": token}
    )
    assert wrong.status_code == 400 and "Nothing was deleted" in wrong.text
    assert all(p.exists() for p in ada.files)

    exported = client.post(f"{page}/personal-data/export", data={"csrf_token": token})
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(exported.content)) as zf:
        assert f"interview-{ada.interview_id}/report.json" in zf.namelist()
        assert sum(n.endswith(".wav") for n in zf.namelist()) == 3
        record = json.loads(zf.read(f"applicant-{ada.applicant_id}.json"))
        assert record["applicant"]["email"] == "ada@example.invalid"
        assert record["demographics"].startswith("withheld")  # a recruiter's export

    confirm = {"confirm": "ADA@example.invalid ", "csrf_token": token}
    # while the applicant's voice session is open in this server, nothing is deleted (the
    # registry entry stands in for a live session: the guard only reads the registry)
    live = client.app.state.live.active
    live[ada.interview_id] = object()
    try:
        busy = client.post(f"{page}/personal-data/delete", data=confirm)
    finally:
        del live[ada.interview_id]
    assert busy.status_code == 409 and "taking this interview right now" in busy.text
    assert all(p.exists() for p in ada.files)
    done = client.post(f"{page}/personal-data/delete", data=confirm)
    assert done.status_code == 200 and "was deleted" in done.text
    assert not any(p.exists() for p in ada.files) and all(p.exists() for p in bob.files)
    gone = client.get(page)
    assert gone.status_code == 404 and "Start again from the Openings list" in gone.text
    with session_scope(ada.seeded.engine) as s:
        assert s.get(Interview, ada.interview_id) is None
        left = s.scalar(
            select(func.count()).select_from(Answer).where(Answer.interview_id == ada.interview_id)
        )
        assert left == 0
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "applicant.delete")).one()
        assert entry.user_id is not None and "ada" not in json.dumps(entry.detail).lower()
        assert (
            s.scalar(
                select(func.count())
                .select_from(AuditLog)
                .where(AuditLog.action == "applicant.export")
            )
            == 1
        )


def test_the_web_app_purges_expired_recordings_on_start(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    old = seed_report(settings, email="old@example.invalid", finished_days_ago=200, camera=False)
    new = seed_report(settings, email="new@example.invalid", camera=False)
    assert all(p.exists() for p in old.files)
    app = create_app(settings, voice=VoiceOptions(warm_up=False))
    with TestClient(app):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(p.exists() for p in old.files):
            time.sleep(0.1)
    assert not any(p.exists() for p in old.files)
    assert all(p.exists() for p in new.files)
    with session_scope(old.seeded.engine) as s:
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "retention.purge")).one()
        assert entry.target == f"interview:{old.interview_id}"


def test_voice_flags_link_to_the_moment_and_say_how_sure(site) -> None:
    """A second voice plays from where it starts; a voice heard in another interview links to
    that interview's recording; both show their similarity, threshold and how sure."""
    ada, bob = site["ada"], site["bob"]
    engine = ada.seeded.engine
    with session_scope(engine) as s:
        answer = s.get(Answer, ada.answer_ids["colour"])
        practice = s.get(Answer, bob.answer_ids["colour"])
        assert answer is not None and answer.started_at and practice is not None
        second = IntegrityEvent(
            interview_id=ada.interview_id,
            question_id="colour",
            kind="speaker_change",
            severity="warning",
            at=answer.started_at + timedelta(seconds=2.5),
            duration_s=3.5,
            evidence={
                "answer_id": answer.id,
                "start_s": 2.5,
                "end_s": 6.0,
                "similarity": 0.69,
                "threshold": 0.775,
                "sure": "medium",
                "key": "voices:speaker_change:colour:0:0",
                "source": "voices",
            },
        )
        same = IntegrityEvent(
            interview_id=ada.interview_id,
            question_id="colour",
            kind="duplicate_voice",
            severity="high",
            at=answer.started_at,
            evidence={
                "answer_id": answer.id,
                "other_interview_id": bob.interview_id,
                "other_opening_id": bob.opening_id,
                "other_answer_id": practice.id,
                "similarity": 0.97,
                "threshold": 0.9,
                "sure": "high",
                "same_applicant": False,
                "key": f"voices:duplicate_voice:{bob.interview_id}",
                "source": "voices",
            },
        )
        s.add_all([second, same])
        s.flush()
        ids = (second.id, same.id)
    try:
        text = site["rita"].get(_page(site)).text
        item = text[text.index(f'id="event-{ids[0]}"') :]
        item = item[: item.index("</li>")]
        assert "0.69 similarity" in item and "below the 0.775 threshold: how sure: medium" in item
        seek = re.search(r'data-answer="(\d+)" data-start="([\d.]+)">▶ play from here', item)
        assert seek and int(seek.group(1)) == answer.id and float(seek.group(2)) == 2.5
        item = text[text.index(f'id="event-{ids[1]}"') :]
        item = item[: item.index("</li>")]
        assert "above the 0.9 threshold: how sure: high" in item
        assert "an interview of another applicant" in item
        link = f"/openings/{bob.opening_id}/applicants/{bob.interview_id}#answer-{practice.id}"
        assert f'href="{link}"' in item
        assert f'id="answer-{practice.id}"' in site["rita"].get(_page(site, "bob")).text
    finally:
        with session_scope(engine) as s:
            for event_id in ids:
                s.delete(s.get(IntegrityEvent, event_id))
