"""A domain lead edits a bank in Debian's Chromium (Playwright) against the app under uvicorn:
sign in, edit a question, see a validation error appear as they type, fix it, listen to the
question, publish, and read the diff. Screenshots go to test-artifacts/screenshots/banks-*.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web_support import CHROMIUM, CHROMIUM_FLAGS, LiveServer, make_settings, playwright_or_skip

from interviewer import accounts
from interviewer.banks.drafts import BankStore
from interviewer.banks.yamltext import parse_yaml
from interviewer.store.db import create_db_engine, migrate, session_scope
from interviewer.web import create_app
from interviewer.web.live import VoiceOptions

sync_api = playwright_or_skip()

SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
PASSWORD = "correct horse battery staple"
WAIT_MS = 30_000  # generous: the machine is shared

BANK = """\
# Browser test bank.
id: browser-bank
title: Browser bank
domain: test
version: 1
description: For the browser test.
questions:
  - id: colour
    prompt: What is your favourite colour?
    reference_answer: Green.
    rubric:
      criteria:
        - id: clarity
          description: Says a colour clearly.
          weight: 1
          levels:
            - {score: 0, descriptor: No colour.}
            - {score: 1, descriptor: A colour.}
          key_points:
            - {id: names-colour, text: Names a colour.}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("banks-browser")
    banks = tmp / "banks"
    banks.mkdir()
    (banks / "browser-bank.yaml").write_text(BANK)
    settings = make_settings(tmp, banks_dir=banks)
    engine = create_db_engine(settings.resolved_database_url)
    migrate(engine)
    store = BankStore(banks, engine, tmp / "locks")
    store.publish("browser-bank", store.draft("browser-bank").sha)  # version 1 is live
    with session_scope(engine) as s:
        accounts.create_user(s, email="lead@example.org", role="domain_lead", password=PASSWORD)
    app = create_app(settings, voice=VoiceOptions(warm_up=False))
    live = LiveServer(app).start(wait_voice=False, timeout=120)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield {"url": live.url, "banks": banks, "store": store}
    finally:
        live.stop()


@pytest.fixture(scope="module")
def page(server: dict[str, Any]) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(bypass_csp=True, viewport={"width": 1200, "height": 900})
            context.set_default_timeout(WAIT_MS)
            page = context.new_page()
            page.js_errors = []
            page.on("pageerror", lambda err: page.js_errors.append(str(err)))
            yield page
        finally:
            browser.close()


def _shot(page: Any, name: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")  # the sticky edit bar then sits where a person sees it
    page.screenshot(path=str(SHOTS / f"banks-{name}.png"), full_page=True)


@pytest.fixture(autouse=True)
def no_script_errors(page: Any) -> Iterator[None]:
    """Every test also fails on an uncaught error in the page's scripts."""
    page.js_errors.clear()
    yield
    assert page.js_errors == []


def _sign_in(page: Any, url: str) -> None:
    """Open the bank list, signing in on the way when the browser is not signed in yet."""
    page.goto(f"{url}/banks")
    if "/login" in page.url:
        page.fill("input[name=email]", "lead@example.org")
        page.fill("input[name=password]", PASSWORD)
        page.click("form:has(input[name=password]) button[type=submit]")
    page.wait_for_url(f"{url}/banks")


def _error_for(page: Any, path: str) -> Any:
    field_id = "f-" + path.replace(".", "-")
    return page.locator(f"#{field_id}-err")


def test_domain_lead_edits_listens_publishes_and_reads_the_diff(page: Any, server) -> None:
    url = server["url"]
    page.goto(f"{url}/banks")
    page.wait_for_url("**/login**")  # anonymous: sent to sign in, and back after
    _sign_in(page, url)
    assert page.locator("#bank-list tr[data-bank=browser-bank]").count() == 1
    _shot(page, "list")

    page.click("text=Browser bank")
    page.wait_for_url("**/banks/browser-bank")
    page.click("text=Edit draft")
    page.wait_for_url("**/banks/browser-bank/edit")
    prompt = page.locator("#f-questions-0-prompt")
    prompt.wait_for()
    _shot(page, "editor")

    # an edit: the prompt changes; version 1 is published, so the version must go up
    prompt.fill("What is your favourite colour, and why?")
    version_error = _error_for(page, "version")
    version_error.wait_for(state="visible")
    assert "already published with different content" in version_error.inner_text()
    assert "version: 2" in version_error.inner_text()

    # a mistake typed into a weight shows up next to that field
    weight = page.locator("#f-questions-0-rubric-criteria-0-weight")
    weight.fill("-1")
    weight_error = _error_for(page, "questions.0.rubric.criteria.0.weight")
    weight_error.wait_for(state="visible")
    assert "greater than 0" in weight_error.inner_text()
    assert weight.get_attribute("aria-invalid") == "true"
    assert page.locator("#problems").is_visible()
    _shot(page, "validation-error")

    # fixing both clears every message (the version with the button its message offers)
    weight.fill("2")
    page.click("#bump-version")
    assert page.input_value("#f-version") == "2"
    page.locator("#problems").wait_for(state="hidden")
    assert not weight_error.is_visible() and not version_error.is_visible()

    # listen: the question is rendered by the interview's voice and loads in the audio element
    page.click("button.listen[data-for='questions.0.prompt']")
    audio = page.locator("audio[data-for='questions.0.prompt']")
    page.wait_for_function(
        """() => { const a = document.querySelector("audio[data-for='questions.0.prompt']");
                   return a && a.src && a.readyState >= 1 && a.duration > 1; }""",
        timeout=90_000,
    )
    assert "/api/banks/browser-bank/audio/" in audio.get_attribute("src")
    _shot(page, "listen")

    # publish: saves the draft first, then publishes it and shows what changed
    page.click("#publish")
    page.wait_for_url("**/banks/browser-bank/diff?a=1&b=2&published=2")
    page.locator("#published").wait_for()
    diff = page.locator("#diff").inner_text()
    assert "Question colour" in diff
    assert "criterion clarity › weight" in diff
    assert "and why" in page.locator("#diff ins").all_inner_texts().__str__()
    _shot(page, "diff")

    saved = parse_yaml((server["banks"] / "browser-bank.yaml").read_text())
    assert saved["version"] == 2 and saved["questions"][0]["prompt"].endswith("and why?")
    versions = server["store"].versions("browser-bank")
    assert [v.version for v in versions] == [1, 2]
    first = server["store"].version_row("browser-bank", 1)
    assert first.content["questions"][0]["prompt"] == "What is your favourite colour?"

    page.click("text=← Browser bank")
    page.wait_for_url("**/banks/browser-bank")
    assert page.locator("#versions tr[data-version]").count() == 2
    assert "Published" in page.locator(".badge").first.inner_text()
    _shot(page, "overview")


def test_file_changed_under_the_editor_loses_nothing(page: Any, server) -> None:
    """Someone edits the file on disk while the page is open: saving shows the conflict and
    keeps the person's text; they choose to save theirs over it, knowingly."""
    url = server["url"]
    path = server["banks"] / "browser-bank.yaml"
    _sign_in(page, url)
    page.goto(f"{url}/banks/browser-bank/edit")
    page.wait_for_url("**/banks/browser-bank/edit")
    page.click("#mode-yaml")
    yaml_box = page.locator("#yaml")
    yaml_box.wait_for(state="visible")
    mine = yaml_box.input_value().replace("Browser bank", "Browser bank (from the page)")

    on_disk = path.read_text().replace("Browser bank", "Browser bank (from git)")
    path.write_text(on_disk)
    yaml_box.fill(mine)
    page.click("#save")
    page.locator("#conflict").wait_for(state="visible")
    assert "changed since this page loaded" in page.locator("#conflict-message").inner_text()
    assert path.read_text() == on_disk  # nothing overwritten
    assert yaml_box.input_value() == mine  # nothing lost in the page
    page.click("#conflict summary")
    assert "(from git)" in page.locator("#conflict-diff").inner_text()
    _shot(page, "conflict")

    page.click("#conflict-overwrite")
    page.locator("#conflict").wait_for(state="hidden")
    assert path.read_text() == mine

    # a YAML mistake is reported with its line, live
    yaml_box.fill(mine.replace("weight:", "wieght:", 1))
    item = page.locator("#problems-list li", has_text="wieght")
    item.wait_for()
    line = next(i for i, t in enumerate(yaml_box.input_value().splitlines(), 1) if "wieght" in t)
    assert f"line {line}" in item.inner_text() and "did you mean 'weight'" in item.inner_text()
    _shot(page, "yaml-error")
    item.click()  # selects the line in the text
    selected = page.evaluate(
        "() => { const t = document.getElementById('yaml');"
        " return t.value.slice(t.selectionStart, t.selectionEnd); }"
    )
    assert selected.strip().startswith("wieght:")
    yaml_box.fill(mine)
    item.wait_for(state="detached")
    page.keyboard.press("Control+s")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Saved')")
    assert path.read_text() == mine


def test_create_and_import_pages(page: Any, server, tmp_path: Path) -> None:
    url = server["url"]
    _sign_in(page, url)
    page.goto(f"{url}/banks/new")
    page.fill("input[name=id]", "cardiology")
    page.fill("input[name=title]", "Cardiology screen")
    page.fill("input[name=domain]", "medicine")
    page.fill("textarea[name=description]", "For cardiologists.")
    _shot(page, "new")
    page.click("#create")
    page.wait_for_url("**/banks/cardiology/edit")
    page.locator("#f-questions-0-prompt").wait_for()
    assert (server["banks"] / "cardiology.yaml").exists()

    bad = tmp_path / "broken.yaml"
    bad.write_text(BANK.replace("id: browser-bank", "id: broken").replace("weight: 1", "weight: 0"))
    page.goto(f"{url}/banks/import")
    page.set_input_files("input[name=file]", str(bad))
    page.click("#import-submit")
    problems = page.locator("#import-problems")
    problems.wait_for()
    text = problems.inner_text()
    line = next(i for i, t in enumerate(bad.read_text().splitlines(), 1) if "weight: 0" in t)
    assert "nothing was imported" in text and f"line {line}" in text and "greater than 0" in text
    hit = page.locator("#import-problems .hit").first.inner_text().split()
    assert hit[:3] == [str(line), "weight:", "0"]  # the excerpt marks the line
    _shot(page, "import-error")
    assert not (server["banks"] / "broken.yaml").exists()
