"""The bank editor over HTTP (create_app on real SQLite): who may use it, live validation,
saving without losing edits, publish and diff, import and export, listening to a question."""

from __future__ import annotations

import re
import shutil
import wave
from io import BytesIO
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from web_support import make_settings

from interviewer import accounts
from interviewer.store.db import create_db_engine, migrate, session_scope
from interviewer.store.models import AuditLog, User
from interviewer.web import create_app
from interviewer.web.live import VoiceOptions

SHIPPED = Path(__file__).resolve().parent.parent / "question_banks"
PASSWORD = "correct horse battery staple"
ROLES = {"lead": "domain_lead", "admin": "admin", "recruiter": "recruiter"}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("banks-web")
    banks = tmp / "banks"
    banks.mkdir()
    for name in ("law.yaml", "dermatology.yaml"):
        shutil.copy(SHIPPED / name, banks / name)
    cfg = make_settings(tmp, banks_dir=banks)
    engine = create_db_engine(cfg.resolved_database_url)
    migrate(engine)
    with session_scope(engine) as s:
        for name, role in ROLES.items():
            accounts.create_user(s, email=f"{name}@example.org", role=role, password=PASSWORD)
    app = create_app(cfg, voice=VoiceOptions(warm_up=False))
    with TestClient(app) as anonymous:
        yield {"app": app, "banks": banks, "settings": cfg, "anon": anonymous}


def _token(client: TestClient, path: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get(path).text)
    assert found, path
    return found.group(1)


def login(env, who: str) -> TestClient:
    client = TestClient(env["app"])
    token = _token(client, "/login")
    response = client.post(
        "/login",
        data={"email": f"{who}@example.org", "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    client.headers["X-CSRF-Token"] = _token(client, "/staff")
    return client


@pytest.fixture(scope="module")
def lead(env) -> TestClient:
    return login(env, "lead")


def _sha(client: TestClient, bank_id: str) -> str:
    page = client.get(f"/banks/{bank_id}/edit").text
    return re.search(r'id="base-sha" value="([0-9a-f]{64})"', page).group(1)


def _form(client: TestClient, **data: str) -> dict[str, str]:
    return {"csrf_token": client.headers["X-CSRF-Token"], **data}


def _new_bank(client: TestClient, bank_id: str) -> None:
    response = client.post(
        "/banks/new",
        data=_form(client, id=bank_id, title=f"Bank {bank_id}", domain="test", description="x."),
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/banks/{bank_id}/edit"


# --- who may use it ---------------------------------------------------------------------------

PAGES = ["/banks", "/banks/new", "/banks/import", "/banks/law", "/banks/law/edit",
         "/banks/law/export", "/banks/law/diff?a=draft&b=draft"]  # fmt: skip


def test_anonymous_and_recruiters_get_nothing(env) -> None:
    anon = env["anon"]
    for path in PAGES:
        response = anon.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert anon.get("/api/banks/law/audio/" + "0" * 64 + ".wav").status_code == 401
    recruiter = login(env, "recruiter")
    for path in PAGES:
        assert recruiter.get(path).status_code == 403, path
    for path, body in [("/api/banks/law/validate", {"yaml": "x"}), ("/api/banks/law/audio", {})]:
        assert recruiter.post(path, json=body).status_code == 403
    response = recruiter.post("/banks/law/publish", data=_form(recruiter, sha="0" * 64))
    assert response.status_code == 403
    assert "Banks" not in recruiter.get("/staff").text.split("</nav>")[0].split("<nav")[-1]


def test_lead_and_admin_see_the_banks(env, lead) -> None:
    page = lead.get("/banks")
    assert page.status_code == 200
    assert "US contract law" in page.text and "Ready to publish" in page.text
    admin = login(env, "admin")
    assert admin.get("/banks/law").status_code == 200


def test_writes_need_the_csrf_token(env, lead) -> None:
    headers = {"X-CSRF-Token": ""}
    assert lead.post("/api/banks/law/validate", json={}, headers=headers).status_code == 403
    bare = {"sha": "0" * 64}
    response = lead.post("/banks/law/publish", data=bare, headers=headers)
    assert response.status_code == 403


# --- live validation --------------------------------------------------------------------------


def test_validate_points_at_the_form_field(lead) -> None:
    page = lead.get("/banks/law/edit").text
    data = __import__("json").loads(
        re.search(r'<script type="application/json" id="bank-data">(.*?)</script>', page, re.S)
        .group(1)
        .replace("&#34;", '"')
    )
    data["questions"][0]["rubric"]["criteria"][0]["weight"] = "heavy"
    data["questions"][1]["prompt"] = ""
    body = lead.post("/api/banks/law/validate", json={"bank": data}).json()
    assert not body["ok"]
    by_path = {i["path"]: i for i in body["issues"]}
    weight = by_path["questions.0.rubric.criteria.0.weight"]
    assert "valid number" in weight["message"] and "'heavy'" in weight["message"]
    assert weight["fix"] == "write a number"
    assert "questions.1.prompt" in by_path
    # the same text through `interviewer bank validate` gives the same messages
    assert "weight:" in body["yaml"].splitlines()[weight["line"] - 1]


def test_validate_raw_yaml_reports_lines(lead) -> None:
    text = (SHIPPED / "law.yaml").read_text().replace("weight: ", "wieght: ", 1)
    body = lead.post("/api/banks/law/validate", json={"yaml": text}).json()
    (issue,) = body["issues"]
    assert "did you mean 'weight'" in issue["fix"]
    assert "wieght" in text.splitlines()[issue["line"] - 1]
    bad = lead.post("/api/banks/law/validate", content=b"not json")
    assert bad.status_code == 400 and "JSON object" in bad.json()["error"]


# --- saving never loses an edit ---------------------------------------------------------------


def test_save_and_stale_save(env, lead) -> None:
    _new_bank(lead, "saves")
    path = env["banks"] / "saves.yaml"
    sha = _sha(lead, "saves")
    mine = path.read_text().replace("Bank saves", "Saved from the form")
    ok = lead.post("/api/banks/saves/draft", json={"yaml": mine, "base_sha": sha})
    assert ok.status_code == 200 and ok.json()["ok"]
    assert path.read_text() == mine
    with session_scope(env["app"].state.engine) as s:
        entry = s.scalars(
            select(AuditLog).where(AuditLog.action == "bank.draft.save").order_by(AuditLog.id)
        ).all()[-1]
        assert entry.target == "bank:saves" and entry.detail["sha256"] == ok.json()["sha"]
        lead_id = s.scalars(select(User.id).where(User.email == "lead@example.org")).one()
        assert entry.user_id == lead_id

    # the file changes on disk while a second tab still holds the old sha
    git_edit = mine.replace("Saved from the form", "Edited in git")
    path.write_text(git_edit)
    assert "Edited in git" in lead.get("/banks/saves/edit").text  # a file edit shows up
    stale = lead.post("/api/banks/saves/draft", json={"yaml": mine + "\n", "base_sha": sha})
    assert stale.status_code == 409
    body = stale.json()
    assert "changed since this page loaded" in body["error"]
    assert body["current_yaml"] == git_edit and "Edited in git" in body["diff"]
    assert path.read_text() == git_edit  # nothing overwritten

    # the no-JavaScript form post: same rule, and a page that keeps the person's text
    form = lead.post("/banks/saves/draft", data=_form(lead, yaml="id: saves\n", base_sha=sha))
    assert form.status_code == 409 and "id: saves" in form.text
    assert path.read_text() == git_edit


def test_rename_is_refused(lead) -> None:
    _new_bank(lead, "renames")
    sha = _sha(lead, "renames")
    body = lead.post("/api/banks/renames/draft", json={"yaml": "id: other\n", "base_sha": sha})
    assert body.status_code == 400 and "cannot be renamed" in body.json()["error"]


# --- publish, diff, export --------------------------------------------------------------------


def test_publish_diff_export(env, lead) -> None:
    _new_bank(lead, "pubs")
    path = env["banks"] / "pubs.yaml"
    first = lead.post("/banks/pubs/publish", data=_form(lead, sha=_sha(lead, "pubs")))
    assert first.status_code == 200 and "Published version 1" in first.text
    assert "Publish version" not in first.text  # nothing left to publish
    again = lead.post("/banks/pubs/publish", data=_form(lead, sha=_sha(lead, "pubs")))
    assert "already published with exactly this content" in again.text

    edited = (
        path.read_text()
        .replace("weight: 1", "weight: 2")
        .replace("Misses the point.", "Misses the point entirely.")
    )
    sha = lead.post("/api/banks/pubs/draft", json={"yaml": edited, "base_sha": _sha(lead, "pubs")})
    issues = sha.json()["issues"]
    assert [i["path"] for i in issues] == ["version"] and "version: 2" in issues[0]["fix"]
    refused = lead.post("/banks/pubs/publish", data=_form(lead, sha=sha.json()["sha"]))
    assert refused.status_code == 409 and "version: 2" in refused.text

    bumped = edited.replace("version: 1", "version: 2")
    saved = lead.post("/api/banks/pubs/draft", json={"yaml": bumped, "base_sha": sha.json()["sha"]})
    assert saved.json()["state"] == "ready"
    done = lead.post(
        "/banks/pubs/publish", data=_form(lead, sha=saved.json()["sha"]), follow_redirects=False
    )
    assert done.headers["location"] == "/banks/pubs/diff?a=1&b=2&published=2"
    diff = lead.get(done.headers["location"]).text
    assert "Published version 2" in diff
    assert "criterion accuracy › weight" in diff
    assert "entirely</ins>" in diff
    assert re.search(r'<span class="del">-\s+weight: 1</span>', diff)  # the YAML view

    export = lead.get("/banks/pubs/export?version=1")
    assert export.status_code == 200 and "attachment" in export.headers["content-disposition"]
    assert "version: 1" in export.text and "weight: 1" in export.text
    assert lead.get("/banks/pubs/export?version=draft").text == bumped
    assert lead.get("/banks/pubs/export?version=9").status_code == 404
    page = lead.get("/banks/pubs").text
    assert 'data-version="1"' in page and 'data-version="2"' in page


def test_restore_draft_from_version(env, lead) -> None:
    _new_bank(lead, "restores")
    lead.post("/banks/restores/publish", data=_form(lead, sha=_sha(lead, "restores")))
    (env["banks"] / "restores.yaml").unlink()
    page = lead.get("/banks/restores").text
    assert "No draft file" in page
    response = lead.post(
        "/banks/restores/restore",
        data=_form(lead, version="1", base_sha=""),
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert "version: 2" in (env["banks"] / "restores.yaml").read_text()


# --- import -----------------------------------------------------------------------------------


def _upload(client: TestClient, data: bytes, name: str = "bank.yaml", **extra: str):
    return client.post(
        "/banks/import",
        data=_form(client, **extra),
        files={"file": (name, BytesIO(data), "application/yaml")},
    )


def test_import_new_bad_and_existing(env, lead) -> None:
    bad = (
        (SHIPPED / "law.yaml")
        .read_text()
        .replace("id: law", "id: imported")
        .replace("weight: ", "weight: -", 1)
    )
    response = _upload(lead, bad.encode(), "imported.yaml")
    assert response.status_code == 422
    assert "nothing was imported" in response.text
    line = next(i for i, t in enumerate(bad.splitlines(), 1) if "weight: -" in t)
    assert f"line {line}" in response.text and "greater than 0" in response.text
    assert not (env["banks"] / "imported.yaml").exists()

    good = bad.replace("weight: -", "weight: ")
    response = _upload(lead, good.encode(), "imported.yaml")
    assert response.status_code == 200 and "Imported as the draft" in response.text
    assert (env["banks"] / "imported.yaml").read_text() == good

    # an existing bank: the differences first, replaced only on confirmation
    changed = good.replace("US contract law", "Changed title")
    confirm = _upload(lead, changed.encode(), "imported.yaml")
    assert "Replace the draft of imported?" in confirm.text and "title" in confirm.text
    base = re.search(r'name="base_sha" value="([0-9a-f]+)"', confirm.text).group(1)
    assert (env["banks"] / "imported.yaml").read_text() == good
    # someone edits the file before the confirmation: refused, nothing lost
    (env["banks"] / "imported.yaml").write_text(good + "# edited\n")
    late = lead.post(
        "/banks/import",
        data=_form(lead, confirm="yes", base_sha=base, yaml=changed, confirm_name="i.yaml"),
    )
    assert late.status_code == 409 and (env["banks"] / "imported.yaml").read_text().endswith(
        "# edited\n"
    )
    base = _sha(lead, "imported")
    replaced = lead.post(
        "/banks/import",
        data=_form(lead, confirm="yes", base_sha=base, yaml=changed, confirm_name="i.yaml"),
    )
    assert replaced.status_code == 200
    assert (env["banks"] / "imported.yaml").read_text() == changed


def test_import_refuses_non_utf8_and_empty(lead) -> None:
    response = _upload(lead, "title: caf\xe9\n".encode("latin-1"))
    assert response.status_code == 422 and "not UTF-8" in response.text
    empty = lead.post("/banks/import", data=_form(lead, yaml=""))
    assert empty.status_code == 400 and "Choose a .yaml file" in empty.text


YAMLISH = st.text(
    alphabet=st.sampled_from(list("abcdeiqrstuvwxyz0123456789:-_ \n\t'\"{}[],#&*!|>%@`\\é\x00")),
    max_size=300,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=YAMLISH | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_bad_input_never_breaks_validate_or_import(lead, text: str) -> None:
    body = lead.post("/api/banks/law/validate", json={"yaml": text})
    assert body.status_code == 200
    issues = body.json()["issues"]
    assert issues  # nothing random is a valid law bank
    lines = max(1, text.count("\n") + 1)
    for issue in issues:
        assert 1 <= issue["line"] <= lines + 1 and issue["message"] and issue["fix"]
    upload = _upload(lead, text.encode("utf-8", "surrogatepass"), "fuzz.yaml")
    assert upload.status_code in (400, 422), upload.status_code
    assert "line" in upload.text or "Choose a .yaml file" in upload.text


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["id", "questions", "rubric", "criteria", "levels", "weight", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=JSON)
def test_any_form_data_gets_messages_not_errors(lead, data) -> None:
    """Whatever a (broken or hostile) page sends as the form's data, the answer is the
    validator's messages."""
    body = lead.post("/api/banks/law/validate", json={"bank": data})
    assert body.status_code == 200
    assert body.json()["issues"] and not body.json()["ok"]


# --- listening --------------------------------------------------------------------------------


def test_listen_renders_and_serves_a_wav(env, lead) -> None:
    response = lead.post("/api/banks/law/audio", json={"text": "How is a contract formed?"})
    assert response.status_code == 200, response.text
    url = response.json()["url"]
    assert re.fullmatch(r"/api/banks/law/audio/[0-9a-f]{64}\.wav", url)
    wav = lead.get(url)
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    with wave.open(BytesIO(wav.content)) as w:
        assert w.getnframes() / w.getframerate() > 0.5
    assert env["anon"].get(url).status_code == 401
    assert lead.get("/api/banks/law/audio/../../secret_key.wav").status_code == 404
    assert lead.get("/api/banks/law/audio/" + "a" * 64 + ".wav").status_code == 410
    empty = lead.post("/api/banks/law/audio", json={"text": "  "})
    assert empty.status_code == 400 and "write the question" in empty.json()["error"]


def test_listen_speaks_with_the_chosen_voice(env, lead) -> None:
    """Listen speaks as applicants will hear it: the default voice (hibari) unless asked for
    another (or the bank's openings chose one); each voice has its own cached file."""
    text = "What makes a contract void?"
    urls = {}
    for voice in (None, "hibari", "espeak"):
        body = {"text": text} | ({"voice": voice} if voice else {})
        response = lead.post("/api/banks/law/audio", json=body)
        assert response.status_code == 200, response.text
        urls[voice] = response.json()["url"]
        assert response.json()["voice"] == (voice or "hibari")
    assert urls[None] == urls["hibari"] != urls["espeak"]
    wavs = [lead.get(urls[v]).content for v in ("hibari", "espeak")]
    assert wavs[0] != wavs[1]
    bad = lead.post("/api/banks/law/audio", json={"text": text, "voice": "kokoro"})
    assert bad.status_code == 400 and "unknown voice" in bad.json()["error"]


def test_unreadable_draft_opens_in_yaml_mode(env, lead) -> None:
    _new_bank(lead, "unreadable")
    path = env["banks"] / "unreadable.yaml"
    path.write_text("id: unreadable\nquestions: [unclosed\n")
    page = lead.get("/banks/unreadable/edit")
    assert page.status_code == 200
    assert "not readable as a bank yet, so the form is off" in page.text
    assert '<script type="application/json" id="bank-data">null</script>' in page.text
    assert "questions: [unclosed" in page.text  # the text itself, to fix
    listed = lead.get("/banks").text
    assert 'data-bank="unreadable"' in listed and "Has problems" in listed


def test_pages_show_which_openings_use_each_version(env, lead) -> None:
    from interviewer.store import repo
    from interviewer.store.models import BankVersion

    _new_bank(lead, "used")
    lead.post("/banks/used/publish", data=_form(lead, sha=_sha(lead, "used")))
    with session_scope(env["app"].state.engine) as s:
        version = s.scalars(select(BankVersion).where(BankVersion.bank_id == "used")).one()
        opening = repo.create_opening(
            s, slug="used-opening", title="Reviewer opening", bank_version=version
        )
        applicant = repo.create_applicant(s, name="A", email="a@example.org")
        repo.create_interview(s, opening=opening, applicant=applicant)
    page = lead.get("/banks/used").text
    row = page.split('data-version="1"')[1].split("</tr>")[0]
    assert "Reviewer opening" in row and "used-opening" in row and "used (locked)" in row
    listed = lead.get("/banks").text.split('data-bank="used"')[1].split("</tr>")[0]
    assert listed.rstrip().endswith("<td>1</td>")
