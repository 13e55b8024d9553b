"""The recruiter's pages over HTTP (TestClient on create_app, real SQLite, real sign-in and CSRF):
who sees which opening, creating one, inviting (one and CSV), the shortlist, decisions and
their history, exports that parse back, charts."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openings_support import PASSWORD, seed_opening, staff
from web_support import csrf_token, make_settings, staff_login

from interviewer import invites
from interviewer.store.db import session_scope
from interviewer.store.models import Applicant, AuditLog, Interview, Invite, Opening
from interviewer.web import create_app
from interviewer.web.live import VoiceOptions


def login(client: TestClient, email: str) -> TestClient:
    return staff_login(client, email, PASSWORD)


def post(client: TestClient, path: str, data: dict | None = None, *, page: str | None = None, **kw):
    """A form post as the browser sends it: with the CSRF token of the page it came from."""
    token = csrf_token(client, page or "/openings")
    return client.post(
        path, data={**(data or {}), "csrf_token": token}, follow_redirects=False, **kw
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("openings-web")
    cfg = make_settings(tmp)
    seed = seed_opening(
        cfg,
        [
            ("Ann", [0.9, 0.8]),
            ("Ben", [0.6, 0.7]),
            ("Cat", [0.6, 0.7]),
            ("Dan", None),
            ("Eve", [0.2, 0.1]),
        ],
        top_n=2,
        flags={"Eve": ["high", "warning"]},
        demographics={
            "Ann": ("Female", "Asian"),
            "Ben": ("Male", "White"),
            "Cat": ("Female", "White"),
            "Eve": ("Male", "Asian"),
        },
    )
    other = seed_opening(cfg, [("Zed", [0.5, 0.5])], slug="other-opening", title="Other opening")
    with session_scope(seed.engine) as s:
        opening = s.get(Opening, seed.opening_id)
        staff(s, "recruiter", email="rec@example.org", opening=opening, name="Rita Recruiter")
        staff(
            s,
            "recruiter",
            email="stranger@example.org",
            opening=s.get(Opening, other.opening_id),
        )
        staff(s, "recruiter", email="spare@example.org", name="Sam Spare")
        staff(s, "admin", email="admin@example.org")
        staff(s, "domain_lead", email="lead@example.org")
    app = create_app(cfg, voice=VoiceOptions(warm_up=False))
    clients: dict[str, TestClient] = {}
    with TestClient(app) as anon:
        for who in ("rec", "stranger", "admin", "lead", "spare"):
            clients[who] = login(TestClient(app), f"{who}@example.org")
        yield {"settings": cfg, "seed": seed, "other": other, "anon": anon, **clients}
        for client in clients.values():
            client.close()


def test_who_sees_the_openings(world) -> None:
    seed = world["seed"]
    page = world["rec"].get("/openings")
    assert page.status_code == 200
    assert "Dermatologist reviewer" in page.text and "Other opening" not in page.text
    admin = world["admin"].get("/openings").text
    assert "Dermatologist reviewer" in admin and "Other opening" in admin
    assert "Other opening" in world["stranger"].get("/openings").text
    assert world["lead"].get("/openings").status_code == 403
    anon = world["anon"].get(f"/openings/{seed.opening_id}", follow_redirects=False)
    assert anon.status_code == 303 and anon.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/invites",
        "/invites.csv",
        "/shortlist.csv",
        "/shortlist.json",
        "/charts",
        "/history",
        "/settings",
    ],
)
def test_recruiter_of_another_opening_gets_404(world, path: str) -> None:
    seed = world["seed"]
    response = world["stranger"].get(f"/openings/{seed.opening_id}{path}")
    assert response.status_code == 404
    assert "Ann" not in response.text
    # and the same for an opening that does not exist
    assert world["stranger"].get(f"/openings/987654{path}").status_code == 404


def test_recruiter_of_another_opening_cannot_post(world) -> None:
    seed = world["seed"]
    stranger = world["stranger"]
    for path, data in [
        (f"/decisions/{seed.ids['Ann']}", {"decision": "reject"}),
        ("/invites", {"name": "X", "email": "x@example.org"}),
        ("/recruiters", {"user_id": "1"}),
        (f"/invites/{seed.ids['Dan']}/renew", {}),
    ]:
        response = post(stranger, f"/openings/{seed.opening_id}{path}", data)
        assert response.status_code == 404, path
    with session_scope(seed.engine) as s:
        assert s.get(Interview, seed.ids["Ann"]).decision is None


def test_shortlist_page(world) -> None:
    seed = world["seed"]
    page = world["rec"].get(f"/openings/{seed.opening_id}")
    assert page.status_code == 200
    html = page.text
    ranked = html[html.index('id="ranked"') : html.index('id="not-ranked"')]
    order = [ranked.index(f">{n}</a>") for n in ("Ann", "Ben", "Cat", "Eve")]
    assert order == sorted(order)
    assert ranked.count(">=2</abbr>") == 2  # the tie, explicit
    assert "85.0" in ranked and "top 2" in html
    assert f'href="/openings/{seed.opening_id}/applicants/{seed.ids["Ann"]}"' in ranked
    assert 'class="minibars"' in ranked and "Per-question scores of Ann: Q1 90.0, Q2 80.0" in ranked
    assert "high 1" in ranked and "warning 1" in ranked
    assert f'name="i" value="{seed.ids["Ann"]}" form="compare"' in ranked
    assert f'id="compare" method="get" action="/openings/{seed.opening_id}/compare"' in html
    unranked = html[html.index('id="not-ranked"') :]
    assert "Dan" in unranked and "not started" in unranked
    assert "/i/" not in html  # invite links only on the invites page
    flagged = world["rec"].get(f"/openings/{seed.opening_id}?flagged=yes&sort=name").text
    names = re.findall(r'class="applicant">([^<]+)</a>', flagged)
    assert names == ["Eve"]
    assert 'value="yes" selected' in flagged  # the filter shows as chosen: bookmarkable
    # column headers sort (and flip the order), keeping the filters
    assert f'href="/openings/{seed.opening_id}?flagged=yes&amp;sort=name&amp;order=desc"' in flagged
    assert 'aria-sort="ascending"' in flagged
    by_score = world["rec"].get(f"/openings/{seed.opening_id}?sort=score&order=desc").text
    names = re.findall(r'class="applicant">([^<]+)</a>', by_score)
    assert names[:4] == ["Ann", "Ben", "Cat", "Eve"] and 'aria-sort="descending"' in by_score
    bogus = world["rec"].get(f"/openings/{seed.opening_id}?status=%3Cscript%3E&sort=x")
    assert bogus.status_code == 200 and "<script>" not in bogus.text


def test_decision_is_audited_and_shown_in_history(world) -> None:
    seed = world["seed"]
    rec = world["rec"]
    base = f"/openings/{seed.opening_id}"
    back = "flagged=no&sort=score"
    response = post(
        rec,
        f"{base}/decisions/{seed.ids['Ben']}",
        {"decision": "hold", "note": "second call", "back": back},
        page=base,
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith(f"{base}?flagged=no&sort=score&saved=")
    page = rec.get(response.headers["location"])
    assert "Decision saved" in page.text and "second call" in page.text
    with session_scope(seed.engine) as s:
        assert s.get(Interview, seed.ids["Ben"]).decision == "hold"
        entry = (
            s.query(AuditLog)
            .filter(
                AuditLog.action == "decision", AuditLog.target == f"interview:{seed.ids['Ben']}"
            )
            .one()
        )
        assert entry.detail["note"] == "second call" and entry.detail["decision"] == "hold"
        rec_id = staff(s, "recruiter", email="rec@example.org").id
        assert entry.user_id == rec_id
    history = rec.get(f"{base}/history").text
    assert "Rita Recruiter" in history and "second call" in history and ">hold<" in history
    # a bad decision is refused with a message, and nothing changes
    bad = post(rec, f"{base}/decisions/{seed.ids['Ben']}", {"decision": "hire"})
    assert bad.status_code == 400 and "not saved" in bad.text
    missing = post(rec, f"{base}/decisions/999999", {"decision": "reject"})
    assert missing.status_code == 404
    other_interview = world["other"].ids["Zed"]
    foreign = post(rec, f"{base}/decisions/{other_interview}", {"decision": "hold"})
    assert foreign.status_code == 404
    # without a CSRF token: refused before the route runs
    no_token = rec.post(
        f"{base}/decisions/{seed.ids['Ben']}",
        data={"decision": "reject"},
        follow_redirects=False,
    )
    assert no_token.status_code == 403
    with session_scope(seed.engine) as s:
        assert s.get(Interview, seed.ids["Ben"]).decision == "hold"


def test_exports_parse_back(world) -> None:
    seed = world["seed"]
    base = f"/openings/{seed.opening_id}"
    response = world["rec"].get(f"{base}/shortlist.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["name"] for r in rows] == ["Ann", "Ben", "Cat", "Eve", "Dan"]
    assert [r["rank"] for r in rows][:4] == ["1", "2", "2", "4"]
    assert rows[3]["flags_high"] == "1" and rows[0]["q1_q1"] == "90.0"
    assert float(rows[0]["interval_low"]) <= 85.0 <= float(rows[0]["interval_high"])
    data = json.loads(world["rec"].get(f"{base}/shortlist.json?flagged=yes").text)
    assert [c["name"] for c in data["candidates"]] == ["Eve"]
    assert data["filters"] == {"flagged": "yes"} and data["rule"] == "top 2"


def test_charts_page_draws_svg_with_the_table(world) -> None:
    seed = world["seed"]
    page = world["rec"].get(f"/openings/{seed.opening_id}/charts")
    assert page.status_code == 200
    html = page.text
    assert html.count('role="img"') >= 1 + 2 + 3  # overall, two questions, three audit charts
    assert 'data-chart="dist-all"' in html and '<title id="dist-all-t">' in html
    assert 'data-chart="impact-sex"' in html and "four-fifths" in html
    # Ann, Ben, Cat shortlisted (top 2 with a tie), Eve not: Female 2/2, Male 1/2 -> 0.5
    sex = html[html.index('data-category="sex"') :]
    male = sex[sex.index('data-group="Male"') :]
    assert "0.500 ⚠" in male[: male.index("</tr>")]


def test_create_opening(world) -> None:
    rec = world["rec"]
    form = rec.get("/openings/new")
    assert form.status_code == 200 and "Recruiter test screen" in form.text
    bad = post(rec, "/openings", {"title": "", "shortlist_top_n": "-1"}, page="/openings/new")
    assert bad.status_code == 400
    assert "Give the opening a title" in bad.text and "Choose a published bank version" in bad.text
    assert "Top N must be between 1" in bad.text
    with session_scope(world["seed"].engine) as s:
        version_id = s.get(Opening, world["seed"].opening_id).bank_version_id
    good = post(
        rec,
        "/openings",
        {
            "title": "Radiology reviewer",
            "bank_version_id": str(version_id),
            "shortlist_threshold": "70",
            "retention_days": "30",
            "require_fullscreen": "on",
        },
        page="/openings/new",
    )
    assert good.status_code == 303
    new_id = int(re.search(r"/openings/(\d+)/invites", good.headers["location"]).group(1))
    assert "Radiology reviewer" in rec.get("/openings").text
    assert world["stranger"].get(f"/openings/{new_id}").status_code == 404
    settings_page = rec.get(f"/openings/{new_id}/settings").text
    assert 'name="shortlist_threshold" min="0" max="100" step="0.1" value="70"' in settings_page
    assert 'name="retention_days" min="1" max="3650" value="30"' in settings_page
    assert 'id="require_fullscreen" name="require_fullscreen" value="on" checked' in settings_page
    assert "score ≥ 70.0" in rec.get(f"/openings/{new_id}").text
    assert "No scored interviews yet" in rec.get(f"/openings/{new_id}/charts").text
    assert "Rita Recruiter" in settings_page  # the creator is assigned


def test_assign_and_unassign_a_recruiter(world) -> None:
    seed = world["seed"]
    base = f"/openings/{seed.opening_id}"
    with session_scope(seed.engine) as s:
        spare_id = staff(s, "recruiter", email="spare@example.org").id
    assert world["spare"].get(base).status_code == 404
    added = post(world["rec"], f"{base}/recruiters", {"user_id": spare_id}, page=f"{base}/settings")
    assert added.status_code == 303
    assert world["spare"].get(base).status_code == 200
    removed = post(world["admin"], f"{base}/recruiters/{spare_id}/remove", page=f"{base}/settings")
    assert removed.status_code == 303
    assert world["spare"].get(base).status_code == 404
    history = world["rec"].get(f"{base}/history").text
    assert "opening assign" in history and "opening unassign" in history


def _upload(client: TestClient, opening_id: int, data: bytes, name: str = "people.csv"):
    token = csrf_token(client, f"/openings/{opening_id}/invites")
    return client.post(
        f"/openings/{opening_id}/invites/upload",
        data={"csrf_token": token},
        files={"file": (name, data, "text/csv")},
        follow_redirects=False,
    )


def _invited(engine, opening_id: int) -> set[str]:
    with session_scope(engine) as s:
        rows = s.query(Applicant.email).join(Invite, Invite.applicant_id == Applicant.id)
        return {e for (e,) in rows.filter(Invite.opening_id == opening_id)}


def test_invite_by_csv_all_or_nothing_then_links(world) -> None:
    seed = world["seed"]
    rec = world["rec"]
    base = f"/openings/{seed.opening_id}"
    before = _invited(seed.engine, seed.opening_id)
    bad = _upload(
        rec,
        seed.opening_id,
        b"name,email,sex\nFay,fay@example.org,female\nGus,gus-at-example.org,\n",
    )
    assert bad.status_code == 400
    assert 'data-row="3"' in bad.text and "is not an email address" in bad.text
    assert "nothing was imported" in bad.text
    assert _invited(seed.engine, seed.opening_id) == before
    good = _upload(
        rec,
        seed.opening_id,
        b"name,email,sex\nFay,fay@example.org,female\nGus,gus@example.org,\n",
    )
    assert good.status_code == 303 and "added=2" in good.headers["location"]
    assert _invited(seed.engine, seed.opening_id) == before | {"fay@example.org", "gus@example.org"}
    again = _upload(rec, seed.opening_id, b"name,email\nFay,FAY@example.org\n")
    assert again.status_code == 400 and "already invited" in again.text
    page = rec.get(f"{base}/invites")
    assert page.headers["cache-control"] == "no-store"
    links = dict(re.findall(r'id="link-(\d+)" class="link" value="([^"]+)"', page.text))
    assert len(links) >= 3  # Dan, Fay, Gus (completed interviews have spent links)
    export = rec.get(f"{base}/invites.csv")
    assert export.headers["cache-control"] == "no-store"
    rows = {r["email"]: r for r in csv.DictReader(io.StringIO(export.text))}
    fay = rows["fay@example.org"]["link"]
    assert fay in links.values() and rows["ann@example.org"]["link"] == ""
    with session_scope(seed.engine) as s:
        token = fay.rsplit("/i/", 1)[1]
        interview = s.get(Interview, invites.verify_invite(s, world["settings"], token))
        assert s.get(Applicant, interview.applicant_id).email == "fay@example.org"
        assert s.query(AuditLog).filter(AuditLog.action == "invite.export").count() >= 1
    # the applicant's link opens the applicant's consent page
    assert world["anon"].get(fay.split("testserver", 1)[1]).status_code == 200


def test_invite_one_and_renew(world) -> None:
    seed = world["seed"]
    rec = world["rec"]
    base = f"/openings/{seed.opening_id}"
    bad = post(rec, f"{base}/invites", {"name": "", "email": "nope"}, page=f"{base}/invites")
    assert bad.status_code == 400
    assert "the name is empty" in bad.text and "is not an email address" in bad.text
    ok = post(
        rec,
        f"{base}/invites",
        {"name": "Hal", "email": "hal@example.org", "race_ethnicity": "Asian"},
        page=f"{base}/invites",
    )
    assert ok.status_code == 303
    with session_scope(seed.engine) as s:
        invite = (
            s.query(Invite)
            .join(Applicant, Applicant.id == Invite.applicant_id)
            .filter(Applicant.email == "hal@example.org")
            .one()
        )
        old = invites.link_token(world["settings"], invite)
    renewed = post(rec, f"{base}/invites/{invite.id}/renew", page=f"{base}/invites")
    assert renewed.status_code == 303
    with session_scope(seed.engine) as s:
        new = invites.link_token(world["settings"], s.get(Invite, invite.id))
        assert new and new != old
        with pytest.raises(invites.InviteForged):
            invites.verify_invite(s, world["settings"], old)
    spent = post(rec, f"{base}/invites/{seed.ids['Ann']}/renew", page=f"{base}/invites")
    assert spent.status_code == 409 and "already complete" in spent.text


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"name,email\n" + b"A,a@example.org\n" * 70_000, "the limit is 1 MB"),
        ("name,email\nRenée,r@example.org\n".encode("cp1252"), "not UTF-8"),
        (b"", "choose a CSV file first"),
        (b"nom,courriel\nA,a@example.org\n", "unknown column"),
    ],
)
def test_upload_errors_are_clear(world, data: bytes, words: str) -> None:
    seed = world["seed"]
    before = _invited(seed.engine, seed.opening_id)
    response = _upload(world["rec"], seed.opening_id, data, name="people.csv" if data else "")
    assert response.status_code == 400 and words in response.text
    assert _invited(seed.engine, seed.opening_id) == before


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_upload_gets_a_page_never_a_crash(world, data: bytes) -> None:
    seed = world["seed"]
    response = _upload(world["rec"], seed.opening_id, b"name,email\n" + data)
    assert response.status_code in (303, 400)
    if response.status_code == 400:
        assert "nothing was imported" in response.text or "choose a CSV" in response.text


def test_change_settings(world) -> None:
    rec = world["rec"]
    with session_scope(world["seed"].engine) as s:
        version_id = s.get(Opening, world["seed"].opening_id).bank_version_id
    created = post(
        rec,
        "/openings",
        {"title": "Settings test", "bank_version_id": str(version_id), "retention_days": "180"},
        page="/openings/new",
    )
    opening_id = int(re.search(r"/openings/(\d+)/", created.headers["location"]).group(1))
    base = f"/openings/{opening_id}/settings"
    page = rec.get(base).text
    assert 'value="Settings test"' in page and 'value="180"' in page
    bad = post(rec, base, {"title": "Settings test", "retention_days": "0"}, page=base)
    assert bad.status_code == 400 and "Retention must be between 1 and 3650" in bad.text
    ok = post(
        rec,
        base,
        {
            "title": "Settings test",
            "retention_days": "30",
            "shortlist_top_n": "4",
            "require_fullscreen": "on",
            "bank_version_id": "999",  # ignored: the bank of an opening never changes here
        },
        page=base,
    )
    assert ok.status_code == 303
    saved = rec.get(ok.headers["location"]).text
    assert "Saved: shortlist top n, retention days, require fullscreen." in saved
    with session_scope(world["seed"].engine) as s:
        opening = s.get(Opening, opening_id)
        assert (opening.retention_days, opening.shortlist_top_n) == (30, 4)
        assert opening.settings["proctoring"]["require_fullscreen"] is True
        assert opening.bank_version_id == version_id
        entry = s.query(AuditLog).filter(AuditLog.action == "opening.update").one()
        assert entry.detail["retention_days"] == ["180", "30"]
    same = {
        "title": "Settings test",
        "retention_days": "30",
        "shortlist_top_n": "4",
        "require_fullscreen": "on",
    }
    again = post(rec, base, same, page=base)
    assert "Saved: nothing changed" in rec.get(again.headers["location"]).text
    assert post(world["stranger"], base, {"title": "x", "retention_days": "1"}).status_code == 404
    assert "opening update" in rec.get(f"/openings/{opening_id}/history").text


def test_demo_applicants_carry_a_badge(world) -> None:
    """make run's seeded applicants (openings/demo.py's addresses) are marked as demo data."""
    seed = world["seed"]
    with session_scope(seed.engine) as s:
        dan = s.get(Applicant, s.get(Interview, seed.ids["Dan"]).applicant_id)
        dan.email, before = "demo-weak@example.invalid", dan.email
    try:
        html = world["rec"].get(f"/openings/{seed.opening_id}").text
    finally:
        with session_scope(seed.engine) as s:
            s.get(Applicant, s.get(Interview, seed.ids["Dan"]).applicant_id).email = before
    assert html.count('class="demo-badge"') == 1
    row = html[html.index(">Dan</a>") :].split("</td>")[0]
    assert 'class="demo-badge"' in row and ">demo</span>" in row
