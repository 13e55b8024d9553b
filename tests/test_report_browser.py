"""The recruiter's applicant page in Debian's Chromium: sign in, play an answer, click a word and
see the audio seek there (and the word light up, the camera follow), click a quote, then compare
two applicants. Screenshots go to test-artifacts/screenshots/report-*.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openings_support import PASSWORD, staff
from report_support import TAB_HIDDEN_AT_S, seed_report
from web_support import CHROMIUM, CHROMIUM_FLAGS, LiveServer, make_settings

from interviewer.store.db import session_scope
from interviewer.store.models import Opening
from interviewer.web import create_app
from interviewer.web.live import VoiceOptions

sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip(
        f"{CHROMIUM} missing: `make test` installs Debian's chromium", allow_module_level=True
    )

SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("report-browser")
    settings = make_settings(tmp)
    ada = seed_report(settings, email="ada@example.invalid", name="Ada Lovelace", score=0.78)
    bob = seed_report(settings, email="bob@example.invalid", name="Bob Babbage", score=0.55)
    with session_scope(ada.seeded.engine) as s:
        staff(s, "recruiter", email="rita@example.org", opening=s.get(Opening, ada.opening_id))
    server = LiveServer(create_app(settings, voice=VoiceOptions(warm_up=False)))
    server.start(wait_voice=False)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield {"server": server, "ada": ada, "bob": bob}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page(site: dict[str, Any]) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[*CHROMIUM_FLAGS, "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            yield context.new_page()
        finally:
            browser.close()


def _shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _audio_time(page: Any, answer_id: int) -> float:
    return page.evaluate(
        f"document.querySelector('.answer[data-answer=\"{answer_id}\"] audio').currentTime"
    )


def test_recruiter_plays_an_answer_seeks_by_word_and_compares(site, page) -> None:
    ada, bob = site["ada"], site["bob"]
    url = site["server"].url
    target = f"/openings/{ada.opening_id}/applicants/{ada.interview_id}"
    page.goto(url + target)
    page.wait_for_url("**/login?next=*")
    page.fill("#email", "rita@example.org")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**" + target)
    page.wait_for_selector("html[data-report-ready='1']", timeout=WAIT_MS)
    answer = ada.answer_ids["colour"]
    block = f".answer[data-answer='{answer}']"
    page.wait_for_function(
        f'document.querySelector("{block} audio").readyState >= 1', timeout=WAIT_MS
    )
    _shot(page, "report-applicant")

    # play from the start, then click the fifth word: the audio jumps there
    page.evaluate(f'document.querySelector("{block} audio").play()')
    page.wait_for_function(
        f'document.querySelector("{block} audio").currentTime > 0.2', timeout=WAIT_MS
    )
    word = ada.words["colour"][4]
    page.click(f"{block} .w >> nth=4")
    at = _audio_time(page, answer)
    assert word["start"] - 0.05 <= at <= word["start"] + 1.0, (at, word)
    page.wait_for_function(
        f"document.querySelector(\"{block}\").dataset.word === '4' || "
        f'document.querySelector("{block} .w.now") !== null',
        timeout=WAIT_MS,
    )
    lit = page.evaluate(
        f"[...document.querySelectorAll(\"{block} .w\")]"
        ".findIndex(w => w.classList.contains('now'))"
    )
    assert lit >= 4
    # the camera follows: its time is the answer's offset in the part plus the audio's time
    offset = float(page.get_attribute(block, "data-video-offset"))
    page.wait_for_function(
        f'document.querySelector("{block} video").readyState >= 1', timeout=WAIT_MS
    )
    video_t = page.evaluate(f'document.querySelector("{block} video").currentTime')
    audio_t = _audio_time(page, answer)
    assert abs(video_t - (offset + audio_t)) < 1.5, (video_t, offset, audio_t)
    _shot(page, "report-playing")

    # a quote seeks to its start in its own answer
    quote = page.locator("#q-colour button.quote").first
    start = float(quote.get_attribute("data-start"))
    quote.click()
    assert start - 0.05 <= _audio_time(page, answer) <= start + 1.0
    # an integrity event during an answer plays that moment of the answer
    page.click(f"#event-{ada.event_ids['tab_hidden']} button.seek")
    assert TAB_HIDDEN_AT_S - 0.05 <= _audio_time(page, answer) <= TAB_HIDDEN_AT_S + 1.0
    page.evaluate("for (const a of document.querySelectorAll('audio')) a.pause()")

    # the thumbnail of the camera event loads through its authorised route
    thumb = page.locator("img.thumb").first
    thumb.scroll_into_view_if_needed()
    page.wait_for_function("document.querySelector('img.thumb').naturalWidth > 0", timeout=WAIT_MS)

    # compare with the other applicant
    page.select_option("#compare-with", str(bob.interview_id))
    page.click("#compare")
    page.wait_for_url("**/compare?*")
    page.wait_for_selector("#compare-table")
    heads = page.locator("#compare-table thead th").all_inner_texts()
    assert "Ada Lovelace" in heads[1] and "Bob Babbage" in heads[2]
    _shot(page, "report-compare")

    # a phone-sized window: nothing needs sideways scrolling but the compare table itself
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(url + target)
    page.wait_for_selector("html[data-report-ready='1']")
    _shot(page, "report-applicant-phone")
    wide = page.evaluate(
        """[...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
            .slice(0, 5).map(e => e.tagName + '.' + e.className)"""
    )
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), wide
