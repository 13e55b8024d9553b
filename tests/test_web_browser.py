"""The applicant's interview in a real browser: Debian's Chromium driven by Playwright, a WAV of
espeak-ng answers as the microphone and a .y4m test pattern as the camera, against the app
served by uvicorn. Every step is screenshotted to test-artifacts/screenshots/.

The fake microphone plays on regardless of the interviewer, so each WAV is laid out on the
agent's timeline (tests/web_support.py: timed_answers_wav). The server runs with no follow-ups
(a recording cannot answer unforeseen questions) and a long no-answer timeout, so a slow
moment on a busy machine shifts the interview instead of breaking it. The agent speaks at
TTS_RATE words a minute rather than the shipped 170, in the light espeak-ng voice rather than
the default neural one (tests/test_voice_hibari.py runs a session in that): the tests wait
through every word it says, and how fast it talks is not what they test.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from web_support import (
    CHROMIUM,
    FIXTURE_ANSWERS,
    FIXTURE_BANK,
    LiveServer,
    agent_turns,
    chromium_args,
    free_port,
    give_consent,
    make_settings,
    make_video,
    playwright_or_skip,
    reply_seconds,
    seed_interview,
    timed_answers_wav,
)

from interviewer.store import repo
from interviewer.store.db import session_scope
from interviewer.store.models import AnswerStatus, Interview, InterviewState
from interviewer.store.recordings import Recordings
from interviewer.web import create_app
from interviewer.web.live import VoiceOptions

sync_api = playwright_or_skip()

SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1100, "height": 860}
VOICE = VoiceOptions(max_follow_ups=0, no_answer_timeout_s=45.0)
TTS_RATE = 260


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("web-browser")
    # answers are scored as they are stored, as in production (SmolLM2: the code path)
    settings = make_settings(
        tmp,
        data_dir=tmp_path_factory.getbasetemp() / "web-data",
        score_answers=True,
        scoring_model="smollm2-135m",
        model_dir=model_dir,
        voice="espeak",
        tts_rate=TTS_RATE,
    )
    seed_interview(settings, email="warm@example.invalid")  # migrates; publishes the bank
    app = create_app(settings, voice=VOICE)
    server = LiveServer(app).start(timeout=600)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield {
            "settings": settings,
            "server": server,
            "tmp": tmp,
            "video": make_video(tmp / "cam.y4m"),
        }
    finally:
        server.stop()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        yield p


def _browser(playwright: Any, wav: Path | None, video: Path | None, *, grant: bool = True) -> Any:
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=chromium_args(wav, video, grant=grant)
    )


def _shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _fits(page: Any) -> bool:
    """No sideways scrolling: the page fits the viewport's width (phones)."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def _device_check(page: Any, shot: str | None = None) -> None:
    page.click("#enable")
    page.wait_for_selector("#continue", state="visible")
    # polled with evaluate, not wait_for_function: Playwright evaluates that one as a string,
    # which the app's Content-Security-Policy (no eval) refuses on pages that keep it on
    deadline = time.monotonic() + 30
    while not page.evaluate("() => document.getElementById('preview').videoWidth > 0"):
        assert time.monotonic() < deadline, "the camera preview never started"
        time.sleep(0.1)
    if shot:
        _shot(page, shot)
    page.click("#continue")
    page.wait_for_url("**/interview")


def _status(page: Any) -> dict[str, str]:
    return page.evaluate(
        """() => {
            const t = (id) => (document.getElementById(id) || {}).textContent || "";
            return {progress: t("progress"), state: t("state"), question: t("question"),
                    caption: t("caption"), timer: t("timer")};
        }"""
    )


def _run_until_done(page: Any, timeout_s: float, shots: dict[str, str] | None = None) -> None:
    """Wait for the finish page, screenshotting the first moment each progress label (e.g.
    "Practice question", "Question 1 of 2") is on screen while the agent listens."""
    shots = dict(shots or {})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if page.url.endswith("/done"):
            return
        try:
            status = _status(page)
        except sync_api.Error:  # navigating to the finish page
            time.sleep(0.2)
            continue
        for label, name in list(shots.items()):
            if status["progress"].startswith(label) and status["state"].startswith("Listening"):
                _shot(page, name)
                del shots[label]
        time.sleep(0.25)
    raise AssertionError(f"the interview did not finish in {timeout_s:.0f} s: {_status(page)}")


def _answers(seeded: Any) -> dict[str, Any]:
    with session_scope(seeded.engine) as s:
        rows = repo.answers_of(s, seeded.interview_id)
        for row in rows:
            s.expunge(row)
    return {a.question_id: a for a in rows}


def _duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(json.loads(out)["format"]["duration"])


def _camera_seconds(settings: Any, interview_id: int, tmp: Path) -> list[float]:
    """Each recorded part (one page load): its chunks joined, remuxed, measured by ffprobe."""
    folder = Recordings(settings.recordings_dir).root / str(interview_id) / "media" / "camera"
    parts: dict[int, list[Path]] = {}
    for chunk in sorted(folder.glob("*.webm")):
        parts.setdefault(int(chunk.stem) // 100_000, []).append(chunk)
    seconds = []
    for part, chunks in sorted(parts.items()):
        joined = tmp / f"part{part}.webm"
        joined.write_bytes(b"".join(c.read_bytes() for c in chunks))
        remuxed = tmp / f"part{part}.mkv"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(joined), "-c", "copy", str(remuxed)],
            check=True,
        )
        seconds.append(_duration(remuxed))
    return seconds


def _check_answer(answer: Any, keys: set[str], settings: Any) -> None:
    transcript = answer.transcript.lower()
    assert answer.status is AnswerStatus.answered, (answer.question_id, answer.status)
    assert any(k in transcript for k in keys), (answer.question_id, transcript)
    assert answer.audio_path, answer.question_id
    wav = Recordings(settings.recordings_dir).open_for_read(answer.audio_path)
    assert _duration(wav) >= (answer.speech_duration_s or 0) > 0.5


# --- the whole interview ---------------------------------------------------------------------


def test_full_interview(web: dict[str, Any], playwright: Any, tmp_path: Path) -> None:
    settings, server = web["settings"], web["server"]
    seeded = seed_interview(settings, email="full@example.invalid")
    texts = [text for text, _ in FIXTURE_ANSWERS.values()]
    wav = tmp_path / "mic.wav"
    reply = reply_seconds(settings)
    spans = timed_answers_wav(settings, wav, agent_turns(FIXTURE_BANK), texts, reply_s=reply)

    browser = _browser(playwright, wav, web["video"])
    try:
        # the whole interview as an applicant's browser runs it: the app's CSP on, and nothing
        # on any page it refuses
        page = browser.new_context(bypass_csp=False, viewport=DESKTOP).new_page()
        refused: list[str] = []
        page.on(
            "console",
            lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
        )
        page.goto(f"{server.url}/i/{seeded.token}")
        _shot(page, "01-consent")
        give_consent(page)
        _device_check(page, "02-device-check")
        page.wait_for_selector("#start:enabled")
        _shot(page, "03-ready-to-start")
        page.click("#start")
        _run_until_done(
            page,
            spans[-1][1] + 120,
            {"Practice question": "04-practice-question", "Question 1 of 2": "05-question"},
        )
        page.wait_for_selector("[data-done]")
        _shot(page, "06-finished")
        # the same link now opens the finish page, never the interview again
        page.goto(f"{server.url}/i/{seeded.token}/interview")
        assert "already complete" in page.content()
        assert refused == []
    finally:
        browser.close()

    answers = _answers(seeded)
    assert list(answers) == list(FIXTURE_ANSWERS), answers
    for qid, (_text, keys) in FIXTURE_ANSWERS.items():
        _check_answer(answers[qid], keys, settings)
    with session_scope(seeded.engine) as s:
        row = s.get(Interview, seeded.interview_id)
        assert InterviewState(row.state) is InterviewState.completed
        assert row.consented_at is not None and row.consented_at <= row.started_at
    camera = _camera_seconds(settings, seeded.interview_id, tmp_path)
    assert len(camera) == 1 and camera[0] > 20, camera
    # the server's scoring worker scored each answer as it was stored, then the interview
    scored = _wait_for_scores(seeded, ["colour", "animal"], timeout_s=300)
    assert all(model == "smollm2-135m" for model in scored.values()), scored


def _wait_for_scores(seeded: Any, questions: list[str], timeout_s: float) -> dict[str, str]:
    from sqlalchemy import select

    from interviewer.store.models import CriterionScore

    deadline = time.monotonic() + timeout_s
    while True:
        with session_scope(seeded.engine) as s:
            interview = s.get(Interview, seeded.interview_id)
            rows = {
                a.question_id: s.scalars(
                    select(CriterionScore.model).where(CriterionScore.answer_id == a.id)
                ).first()
                for a in repo.answers_of(s, seeded.interview_id)
                if a.question_id in questions
            }
            if interview.score is not None and all(rows.get(q) for q in questions):
                return rows
        assert time.monotonic() < deadline, f"not scored in {timeout_s:.0f} s: {rows}"
        time.sleep(1.0)


# --- reload, closed tab, resume --------------------------------------------------------------


def test_reload_resumes_at_the_current_question(
    web: dict[str, Any], playwright: Any, tmp_path: Path
) -> None:
    settings, server = web["settings"], web["server"]
    seeded = seed_interview(settings, email="reload@example.invalid")
    practice, keys = FIXTURE_ANSWERS["practice"]
    first_wav = tmp_path / "first.wav"
    reply = reply_seconds(settings)
    timed_answers_wav(
        settings, first_wav, agent_turns(FIXTURE_BANK)[:1], [practice], reply_s=reply, tail_s=300
    )

    browser = _browser(playwright, first_wav, web["video"])
    try:
        page = browser.new_context(bypass_csp=True, viewport=DESKTOP).new_page()
        page.goto(f"{server.url}/i/{seeded.token}")
        give_consent(page)
        _device_check(page)
        page.click("#start")
        page.wait_for_function(
            "document.getElementById('progress').textContent.startsWith('Question 1 of 2')",
            timeout=int((60 + 3 * reply) * 1000),
        )
        before = _answers(seeded)
        assert list(before) == ["practice"]
        _check_answer(before["practice"], keys, settings)

        page.reload()
        page.wait_for_selector("#start:enabled")
        assert "Continue the interview" in page.inner_text("#start")
        _shot(page, "07-reload-continue")
        page.click("#start")
        page.wait_for_function(
            "document.getElementById('progress').textContent.startsWith('Question 1 of 2')"
            " && document.getElementById('question').textContent.includes('favourite colour')",
            timeout=60_000,
        )
        page.wait_for_function(
            "document.getElementById('caption').textContent.includes('Welcome back')"
            " || document.getElementById('caption').textContent.includes('favourite colour')",
            timeout=60_000,
        )
        _shot(page, "08-resumed")
        after = _answers(seeded)
        assert after["practice"].transcript == before["practice"].transcript  # nothing lost
        with session_scope(seeded.engine) as s:
            assert s.get(Interview, seeded.interview_id).next_question_index == 0
    finally:
        browser.close()  # the tab is closed mid-question

    # the same link, in a new browser (the closed tab came back), finishes the interview
    rest = [FIXTURE_ANSWERS[q][0] for q in ("colour", "animal")]
    second_wav = tmp_path / "second.wav"
    spans = timed_answers_wav(
        settings, second_wav, agent_turns(FIXTURE_BANK, resume_at=0), rest, reply_s=reply
    )
    browser = _browser(playwright, second_wav, web["video"])
    try:
        page = browser.new_context(bypass_csp=True, viewport=DESKTOP).new_page()
        page.goto(f"{server.url}/i/{seeded.token}")
        page.wait_for_url("**/check")  # consent is not asked twice
        _device_check(page)
        page.click("#start")
        _run_until_done(page, spans[-1][1] + 120)
    finally:
        browser.close()

    answers = _answers(seeded)
    assert list(answers) == list(FIXTURE_ANSWERS)
    assert answers["practice"].transcript == before["practice"].transcript
    for qid, (_text, keys) in FIXTURE_ANSWERS.items():
        _check_answer(answers[qid], keys, settings)
    # two page loads with a recorder each: two playable parts, neither overwrote the other
    camera = _camera_seconds(settings, seeded.interview_id, tmp_path)
    assert len(camera) >= 2 and all(seconds > 2 for seconds in camera), camera


def test_a_second_tab_is_refused_with_a_message(web: dict[str, Any], playwright: Any) -> None:
    settings, server = web["settings"], web["server"]
    seeded = seed_interview(settings, email="tabs@example.invalid")
    browser = _browser(playwright, None, web["video"])
    try:
        context = browser.new_context(bypass_csp=True, viewport=DESKTOP)
        first = context.new_page()
        first.goto(f"{server.url}/i/{seeded.token}")
        give_consent(first)
        first.goto(f"{server.url}/i/{seeded.token}/interview")
        first.wait_for_selector("#start:enabled")
        first.click("#start")
        first.wait_for_function(
            "['thinking', 'speaking', 'listening'].includes("
            "document.getElementById('state').dataset.state)"
            " && !document.getElementById('state').textContent.startsWith('Preparing')"
        )
        second = context.new_page()  # a new tab: its own sessionStorage, so another tab id
        second.goto(f"{server.url}/i/{seeded.token}/interview")
        second.wait_for_selector("#start:enabled")
        second.click("#start")
        second.wait_for_selector("#problem[data-problem=other-tab]", state="visible")
        assert "open in another tab" in second.inner_text("#problem")
        _shot(second, "09-second-tab-refused")
        assert first.evaluate("document.getElementById('problem').hidden")
    finally:
        browser.close()


# --- errors a person can act on --------------------------------------------------------------


def test_server_restart_mid_interview_resumes(
    web: dict[str, Any], playwright: Any, tmp_path: Path
) -> None:
    """The server goes away mid-interview: the page says so, keeps trying, and continues the
    same question when a new server process (same database) is up."""
    settings = web["settings"]
    seeded = seed_interview(settings, email="restart@example.invalid")
    server = LiveServer(create_app(settings, voice=VOICE)).start(timeout=600)
    port = server.port
    browser = _browser(playwright, None, web["video"])
    try:
        page = browser.new_context(bypass_csp=True, viewport=DESKTOP).new_page()
        page.goto(f"{server.url}/i/{seeded.token}")
        give_consent(page)
        page.goto(f"{server.url}/i/{seeded.token}/interview")
        page.wait_for_selector("#start:enabled")
        page.click("#start")
        page.wait_for_function(
            "document.getElementById('progress').textContent.startsWith('Practice question')",
            timeout=120_000,
        )
        server.stop()
        page.wait_for_selector("#banner:not([hidden])", timeout=30_000)
        banner = page.inner_text("#banner")
        assert "Reconnecting" in banner and "answers so far are saved" in banner
        _shot(page, "17-server-restarting")
        server = LiveServer(create_app(settings, voice=VOICE), port=port).start(timeout=600)
        page.wait_for_function(
            "document.getElementById('caption').textContent.includes('Welcome back')",
            timeout=120_000,
        )
        assert page.inner_text("#progress").startswith("Practice question")
        assert page.is_hidden("#banner") and page.is_hidden("#problem")
        _shot(page, "18-server-back")
    finally:
        browser.close()
        server.stop()


def test_unsupported_browser_says_what_to_do(web: dict[str, Any], playwright: Any) -> None:
    settings, server = web["settings"], web["server"]
    seeded = seed_interview(settings, email="old-browser@example.invalid")
    browser = _browser(playwright, None, web["video"])
    try:
        context = browser.new_context(bypass_csp=True, viewport=DESKTOP)
        context.add_init_script("delete window.AudioWorkletNode; delete window.MediaRecorder;")
        page = context.new_page()
        page.goto(f"{server.url}/i/{seeded.token}")
        give_consent(page)
        page.wait_for_selector("#problem[data-problem=unsupported]", state="visible")
        text = page.inner_text("#problem")
        assert "can't run this interview" in text and "recent Chrome" in text
        assert page.is_hidden("#enable")
        _shot(page, "19-unsupported-browser")
    finally:
        browser.close()


def test_denied_permissions_say_what_to_do(web: dict[str, Any], playwright: Any) -> None:
    settings, server = web["settings"], web["server"]
    seeded = seed_interview(settings, email="denied@example.invalid")
    # no --use-fake-ui-for-media-stream: the context decides, and it grants nothing
    browser = _browser(playwright, None, web["video"], grant=False)
    try:
        context = browser.new_context(bypass_csp=True, viewport=DESKTOP, permissions=[])
        page = context.new_page()
        page.goto(f"{server.url}/i/{seeded.token}")
        give_consent(page)
        page.click("#enable")
        page.wait_for_selector("#problem[data-problem=denied]", state="visible")
        text = page.inner_text("#problem")
        assert "Camera and microphone are blocked" in text and "Try again" in text
        _shot(page, "10-permission-denied")
        page.goto(f"{server.url}/i/{seeded.token}/interview")
        page.wait_for_selector("#problem[data-problem=denied]", state="visible")
        assert page.is_disabled("#start")
    finally:
        browser.close()


def test_link_problems_show_their_messages(web: dict[str, Any], playwright: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from interviewer.store.models import Invite

    settings, server = web["settings"], web["server"]
    expired = seed_interview(settings, email="expired@example.invalid")
    with session_scope(expired.engine) as s:
        s.get(Invite, expired.invite_id).expires_at = datetime.now(UTC) - timedelta(minutes=1)
    browser = _browser(playwright, None, None)
    try:
        page = browser.new_context(bypass_csp=True, viewport=DESKTOP).new_page()
        page.goto(f"{server.url}/i/{expired.token}")
        assert "This invite has expired" in page.inner_text("main")
        assert "Ask the recruiter" in page.inner_text("main")
        _shot(page, "11-expired-link")
        page.goto(f"{server.url}/i/{expired.token[:-4]}AAAA")
        assert "This link doesn" in page.inner_text("main")
        _shot(page, "12-forged-link")
    finally:
        browser.close()


def test_phone_viewport_and_keyboard(web: dict[str, Any], playwright: Any) -> None:
    settings, server = web["settings"], web["server"]
    seeded = seed_interview(settings, email="phone@example.invalid")
    browser = _browser(playwright, None, web["video"])
    try:
        context = browser.new_context(
            bypass_csp=True, viewport=PHONE, is_mobile=True, has_touch=True
        )
        page = context.new_page()
        page.goto(f"{server.url}/i/{seeded.token}")
        assert _fits(page)
        _shot(page, "13-phone-consent")
        # keyboard only: the skip link, then the three boxes and the button, in reading order
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"
        for box in ("c-recording", "c-scoring", "c-retention"):
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.id") == box
            page.keyboard.press("Space")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.type") == "submit"
        page.keyboard.press("Enter")
        page.wait_for_url("**/check")
        page.focus("#enable")
        page.keyboard.press("Enter")
        page.wait_for_selector("#continue", state="visible")
        assert page.evaluate("document.activeElement.id") == "continue"
        assert _fits(page)
        _shot(page, "14-phone-device-check")
        page.keyboard.press("Enter")
        page.wait_for_url("**/interview")
        page.wait_for_selector("#start:enabled")
        assert page.evaluate("document.activeElement.id") == "start"
        page.keyboard.press("Enter")
        page.wait_for_selector("#stage", state="visible")
        page.wait_for_function(
            "document.getElementById('caption').textContent.length > 0", timeout=120_000
        )
        assert _fits(page)
        _shot(page, "15-phone-interview")
        for label in ("#repeat",):
            assert page.is_visible(label)
    finally:
        browser.close()


# --- a shipped bank, whole (slow) ------------------------------------------------------------


@pytest.mark.slow
def test_shipped_bank_interview(web: dict[str, Any], playwright: Any, tmp_path: Path) -> None:
    """Every question of a shipped bank, its long prompts included, answered in the browser.
    The weak demo answers (26-38 words each) rather than the strong ones (78-90): the mic plays
    in real time, so they take half the wall time, and what is checked is that each answer lands
    whole on its question, not its length."""
    from interviewer.banks.check import load_banks

    settings, server = web["settings"], web["server"]
    banks = {b.id: b for b in load_banks(Path("question_banks"))}
    bank = banks["journalism"]
    demo = yaml.safe_load(Path("question_banks/demo_answers/journalism.yaml").read_text())
    seeded = seed_interview(settings, bank, email="shipped@example.invalid")
    texts = [demo["practice"]["weak"]] + [demo["answers"][q.id]["weak"] for q in bank.questions]
    wav = tmp_path / "mic.wav"
    reply = max(3.0, reply_seconds(settings))
    timed_answers_wav(settings, wav, agent_turns(bank), texts, reply_s=reply, margin_s=3.5)
    duration = _duration(wav)

    browser = _browser(playwright, wav, web["video"])
    try:
        page = browser.new_context(bypass_csp=True, viewport=DESKTOP).new_page()
        page.goto(f"{server.url}/i/{seeded.token}")
        give_consent(page)
        _device_check(page)
        page.click("#start")
        _run_until_done(page, duration + 240, {"Question 3 of": "16-shipped-bank-question"})
    finally:
        browser.close()

    answers = _answers(seeded)
    assert list(answers) == ["practice", *(q.id for q in bank.questions)]
    for answer in answers.values():
        assert answer.status is AnswerStatus.answered, (answer.question_id, answer.status)
        assert len(answer.transcript.split()) >= 10, (answer.question_id, answer.transcript)
    assert shutil.which("ffprobe")
    assert _camera_seconds(settings, seeded.interview_id, tmp_path)[0] > duration / 2


def test_repeat_button_asks_the_question_again(
    web: dict[str, Any], playwright: Any, tmp_path: Path
) -> None:
    import numpy as np

    from interviewer.voice.io import StreamingWavWriter

    settings, server = web["settings"], web["server"]
    seeded = seed_interview(settings, email="repeat@example.invalid")
    silent = tmp_path / "silent.wav"
    writer = StreamingWavWriter(silent, 16_000)
    writer.write(np.zeros(16_000 * 120, dtype=np.int16).tobytes())
    writer.close()
    browser = _browser(playwright, silent, web["video"])
    try:
        page = browser.new_context(bypass_csp=True, viewport=DESKTOP).new_page()
        page.goto(f"{server.url}/i/{seeded.token}")
        give_consent(page)
        page.goto(f"{server.url}/i/{seeded.token}/interview")
        page.wait_for_selector("#start:enabled")
        page.click("#start")
        page.wait_for_function(
            "document.getElementById('progress').textContent.startsWith('Practice question')"
            " && document.getElementById('state').dataset.state === 'listening'",
            timeout=120_000,
        )
        page.focus("#repeat")
        page.keyboard.press("Enter")  # the button works from the keyboard
        page.wait_for_function(
            "document.getElementById('caption').textContent.includes('Here is the question again')",
            timeout=60_000,
        )
        page.wait_for_function(
            "document.getElementById('caption').textContent.includes('What do you do?')",
            timeout=60_000,
        )
        _shot(page, "20-repeated-question")
        assert page.inner_text("#progress").startswith("Practice question")
    finally:
        browser.close()
    assert _answers(seeded) == {}  # a repeat request is not an answer


# --- proctoring: what the page notices -------------------------------------------------------


@contextlib.contextmanager
def _tabbed_browser(playwright: Any, wav: Path, video: Path, tmp: Path) -> Iterator[Any]:
    """Chromium started by the test and driven over CDP with Playwright's default overrides
    off. Playwright otherwise keeps every page focused and visible (each of its pages is a
    window of its own, by design: microsoft/playwright#2286), so no tab switch would ever
    reach the page; here pages are real tabs of one window, and switching hides the other."""
    port = free_port()
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless=new",
            f"--remote-debugging-port={port}",
            f"--user-data-dir={tmp / 'chromium-profile'}",
            f"--window-size={DESKTOP['width']},{DESKTOP['height']}",
            *chromium_args(wav, video),
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    browser = None
    try:
        deadline = time.monotonic() + 60
        while browser is None:
            try:
                browser = playwright.chromium.connect_over_cdp(
                    f"http://127.0.0.1:{port}", no_defaults=True
                )
            except sync_api.Error:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.3)
        yield browser
    finally:
        if browser is not None:
            browser.close()
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _integrity_acked(page: Any, at_least: int) -> None:
    """Until the page has reported ``at_least`` events and the server acknowledged them all."""
    page.wait_for_function(
        "([n]) => window.interviewIntegrity && window.interviewIntegrity.seq >= n"
        " && window.interviewIntegrity.pending.every((p) => p.events.length === 0)",
        arg=[at_least],
        timeout=60_000,
    )


def test_tab_switch_paste_fullscreen_and_reload_are_recorded(
    web: dict[str, Any], playwright: Any, tmp_path: Path
) -> None:
    import numpy as np
    from sqlalchemy import select

    from interviewer.store.models import IntegrityEvent, Opening
    from interviewer.voice.io import StreamingWavWriter

    settings, server = web["settings"], web["server"]
    seeded = seed_interview(settings, email="integrity@example.invalid", slug="web-integrity")
    with session_scope(seeded.engine) as s:
        opening = s.scalars(select(Opening).where(Opening.slug == "web-integrity")).one()
        opening.settings = {"proctoring": {"require_fullscreen": True}}
    silent = tmp_path / "silent.wav"
    writer = StreamingWavWriter(silent, 16_000)
    writer.write(np.zeros(16_000 * 240, dtype=np.int16).tobytes())
    writer.close()
    pasted = "A model answer copied from somewhere else."
    listening = (
        "document.getElementById('progress').textContent.startsWith('Practice question')"
        " && document.getElementById('state').dataset.state === 'listening'"
    )

    with _tabbed_browser(playwright, silent, web["video"], tmp_path) as browser:
        context = browser.contexts[0]
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
        page = context.pages[0]
        # as new_page() does: Playwright polls wait_for_function with eval, which the CSP refuses
        context.new_cdp_session(page).send("Page.setBypassCSP", {"enabled": True})
        page.goto(f"{server.url}/i/{seeded.token}")
        give_consent(page)
        page.goto(f"{server.url}/i/{seeded.token}/interview")
        page.wait_for_selector("#start:enabled", timeout=60_000)
        page.click("#start")
        page.wait_for_function(listening, timeout=120_000)

        # the opening asks for full screen: the page offers it, then notices leaving it
        page.wait_for_selector("#fullscreen-ask:visible")
        _shot(page, "21-fullscreen-asked")
        page.click("#fullscreen")
        page.wait_for_function("document.fullscreenElement !== null")
        page.evaluate("document.exitFullscreen()")
        page.wait_for_selector("#fullscreen-ask:visible")
        time.sleep(1.5)
        page.click("#fullscreen")
        page.wait_for_function("document.fullscreenElement !== null")
        page.evaluate("document.exitFullscreen()")

        # another tab in front for a few seconds, then back
        other = context.new_page()
        other.goto(f"{server.url}/")
        assert page.evaluate("document.visibilityState") == "hidden"
        time.sleep(3.0)
        _shot(other, "22-another-tab")
        page.bring_to_front()
        other.close()

        # a paste into the page: only its length is reported, never the text
        page.evaluate("(text) => navigator.clipboard.writeText(text)", pasted)
        page.keyboard.press("Control+V")
        _integrity_acked(page, 3)
        _shot(page, "23-after-tab-switch-and-paste")

        # a reload mid-interview: the interview continues, the reload is recorded
        page.reload()
        page.wait_for_selector("#start:enabled", timeout=60_000)
        page.click("#start")
        page.wait_for_function(listening, timeout=120_000)
        _integrity_acked(page, 1)
        _shot(page, "24-resumed-after-reload")

    with session_scope(seeded.engine) as s:
        rows = s.scalars(
            select(IntegrityEvent)
            .where(IntegrityEvent.interview_id == seeded.interview_id)
            .order_by(IntegrityEvent.at)
        ).all()
        got = [(e.kind, e.question_id, e.duration_s, e.severity, e.evidence) for e in rows]
    kinds = [g[0] for g in got]
    assert kinds == ["fullscreen_exited", "tab_hidden", "paste", "page_reloaded"], got
    fullscreen, hidden, paste, reload = got
    assert fullscreen[1] == "practice" and 1.0 <= fullscreen[2] < 20, fullscreen
    assert fullscreen[3] == "warning"  # any exit counts when the opening asks for full screen
    assert hidden[1] == "practice" and 2.5 <= hidden[2] < 30, hidden
    assert hidden[3] == "info"  # under 5 s: worth listing, usually innocent
    assert paste[1] == "practice" and paste[4]["characters"] == len(pasted), paste
    assert paste[3] == "warning" and pasted not in json.dumps(paste[4])
    assert reload[4]["count"] == 1 and reload[3] == "info", reload
