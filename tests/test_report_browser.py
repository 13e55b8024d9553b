"""The recruiter's applicant page in Debian's Chromium: sign in, play an answer, click a word and
see the audio seek there (and the word light up, the camera follow), click a quote, then compare
two applicants. Screenshots go to test-artifacts/screenshots/report-*.png."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import Any

import pytest
from openings_support import PASSWORD, staff
from report_support import TAB_HIDDEN_AT_S, seed_report
from web_support import (
    WAIT_MS,
    chromium,
    make_settings,
    new_page,
    playwright_or_skip,
    screenshot,
    sign_in,
    staff_server,
)

from interviewer.store.db import session_scope
from interviewer.store.models import Answer, Opening
from interviewer.store.recordings import Recordings

playwright_or_skip()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("report-browser")
    settings = make_settings(tmp)
    ada = seed_report(
        settings, email="ada@example.invalid", name="Ada Lovelace", score=0.78, red_flag=True
    )
    bob = seed_report(settings, email="bob@example.invalid", name="Bob Babbage", score=0.55)
    cam = seed_report(
        settings, email="cam@example.invalid", name="Cam Recorder", score=0.5, camera=False
    )
    with session_scope(ada.seeded.engine) as s:
        staff(s, "recruiter", email="rita@example.org", opening=s.get(Opening, ada.opening_id))
    with staff_server(settings) as server:
        yield {"server": server, "ada": ada, "bob": bob, "cam": cam, "settings": settings}


@pytest.fixture(scope="module")
def page(site: dict[str, Any]) -> Iterator[Any]:
    """One browser page for the module (run after the first test, the second is signed in)."""
    with chromium("--autoplay-policy=no-user-gesture-required") as browser:
        yield new_page(browser)


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
    sign_in(page, "rita@example.org", PASSWORD)
    page.wait_for_url("**" + target)
    page.wait_for_selector("html[data-report-ready='1']", timeout=WAIT_MS)
    answer = ada.answer_ids["colour"]
    block = f".answer[data-answer='{answer}']"
    page.wait_for_function(
        f'document.querySelector("{block} audio").readyState >= 1', timeout=WAIT_MS
    )
    screenshot(page, "report-applicant")

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
        f'[...document.querySelectorAll("{block} .w")]'
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
    screenshot(page, "report-playing")

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
    screenshot(page, "report-compare")

    # a phone-sized window: nothing needs sideways scrolling but the compare table itself
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(url + target)
    page.wait_for_selector("html[data-report-ready='1']")
    screenshot(page, "report-applicant-phone")
    wide = page.evaluate(
        """[...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
            .slice(0, 5).map(e => e.tagName + '.' + e.className)"""
    )
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), wide


RECORD_JS = """async (seconds) => {
  const canvas = document.createElement("canvas");
  canvas.width = 160; canvas.height = 120;
  const ctx = canvas.getContext("2d");
  let n = 0;
  const draw = setInterval(() => {
    ctx.fillStyle = `hsl(${(n * 7) % 360}, 80%, 50%)`; ctx.fillRect(0, 0, 160, 120);
    ctx.fillStyle = "#000"; ctx.font = "40px sans-serif"; ctx.fillText(String(n++), 40, 75);
  }, 50);
  const recorder = new MediaRecorder(
    canvas.captureStream(20), { mimeType: "video/webm;codecs=vp8" });
  const blobs = [];
  recorder.ondataavailable = (e) => { if (e.data.size) blobs.push(e.data); };
  recorder.start(1000);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  await new Promise((r) => { recorder.onstop = r; recorder.stop(); });
  clearInterval(draw);
  const out = [];
  for (const blob of blobs) {
    const bytes = new Uint8Array(await blob.arrayBuffer());
    let text = "";
    for (let i = 0; i < bytes.length; i += 8192) {
      text += String.fromCharCode(...bytes.subarray(i, i + 8192));
    }
    out.push(btoa(text));
  }
  return out;
}"""


def test_a_mediarecorder_camera_recording_follows_the_audio(site, page) -> None:
    """The browser's own recording format (WebM without cues or duration, in 1 s chunks) is
    what the camera player gets in production: it must load and seek with the audio."""
    cam, url = site["cam"], site["server"].url
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(url + "/login")  # any page of the app: MediaRecorder needs a document
    chunks = [base64.b64decode(c) for c in page.evaluate(RECORD_JS, 7)]
    assert len(chunks) >= 5
    with session_scope(cam.seeded.engine) as s:
        started = s.get(Answer, cam.answer_ids["practice"]).started_at
    recordings = Recordings(site["settings"].recordings_dir)
    # as the upload route stores them: part 1, one file per chunk, mtime = arrival; the
    # recorder started 1 s before the answer (the page assumes a 4 s first chunk)
    first = started.timestamp() - 1.0 + 4.0
    for i, data in enumerate(chunks):
        path = recordings.media_chunk(cam.interview_id, "camera", 100_000 + i)
        path.write_bytes(data)
        os.utime(path, (first + i, first + i))
    page.goto(url + f"/openings/{cam.opening_id}/applicants/{cam.interview_id}")
    if "/login" in page.url:
        sign_in(page, "rita@example.org", PASSWORD)
        page.wait_for_url("**/applicants/*")
    block = f".answer[data-answer='{cam.answer_ids['practice']}']"
    assert abs(float(page.get_attribute(block, "data-video-offset")) - 1.0) < 0.01
    page.wait_for_function(
        f'document.querySelector("{block} video").readyState >= 1', timeout=WAIT_MS
    )
    page.click(f"{block} .w >> nth=2")
    page.wait_for_function(
        f"""(() => {{
            const b = document.querySelector("{block}");
            const v = b.querySelector("video"), a = b.querySelector("audio");
            return v.readyState >= 2 && Math.abs(v.currentTime - (1.0 + a.currentTime)) < 0.6;
        }})()""",
        timeout=WAIT_MS,
    )
    screenshot(page, "report-mediarecorder-camera")
    # the personal-data page: export and the confirmed deletion
    page.click("text=Personal data…")
    page.wait_for_selector("#confirm")
    screenshot(page, "report-personal-data")
    # ... and the erasure itself: a wrong address deletes nothing, the right one everything
    page.fill("#confirm", "someone@example.invalid")
    page.click("#delete")
    page.wait_for_selector("#delete-error")
    assert recordings.open_for_read(f"{cam.interview_id}/media/camera/00100000.webm")
    page.fill("#confirm", "cam@example.invalid")
    page.click("#delete")
    page.wait_for_selector("#deleted")
    screenshot(page, "report-deleted")
    assert not (recordings.root / str(cam.interview_id)).exists()
