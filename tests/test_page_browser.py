"""What the applicant's page says while the interview goes on, in a real browser: Debian's
Chromium driven by Playwright, a WAV of espeak-ng answers as the microphone, the app under
uvicorn with real VAD, whisper tiny.en and pyttsx3.

The status label follows the agent's own status events: never "Listening" during the
introduction or after "Goodbye", "Hearing you" while the applicant speaks, the timer reset for
each question and stopped when the interview is finished. "I wasn't finished", pressed after the
agent moved on, takes the same answer up again: the stored answer holds both parts.
Screenshots go to test-artifacts/screenshots/ (30-*).
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from livekit import rtc
from web_support import (
    CUT_OFF_ANSWERS,
    CUT_OFF_BANK,
    LiveServer,
    agent_turns,
    asyncio_run,
    cut_off_parts_heard,
    make_settings,
    make_video,
    playwright_or_skip,
    reply_seconds,
    screenshot,
    seed_interview,
    start_interview,
    timed_answers_wav,
)

from interviewer.interview import Script
from interviewer.store import repo
from interviewer.store.db import session_scope
from interviewer.store.models import AnswerStatus
from interviewer.store.recordings import Recordings
from interviewer.voice.stt import WhisperSTT
from interviewer.web import create_app
from interviewer.web.live import VoiceOptions

sync_api = playwright_or_skip()

pytestmark = pytest.mark.slow

BANK = CUT_OFF_BANK
PRACTICE, MORE, COLOUR = CUT_OFF_ANSWERS
TTS_RATE = 260

# every change of the label, caption, progress or timer, kept in sessionStorage so that it
# survives the move to the finish page
WATCH = """() => {
    const t = (id) => (document.getElementById(id) || {}).textContent || "";
    const log = () => {
        const entries = JSON.parse(sessionStorage.getItem("page-log") || "[]");
        entries.push({state: document.getElementById("state").dataset.state, label: t("state"),
                      caption: t("caption"), progress: t("progress"), timer: t("timer"),
                      more: !document.getElementById("more-time").disabled,
                      cont: !document.getElementById("not-finished").disabled});
        sessionStorage.setItem("page-log", JSON.stringify(entries));
    };
    const watch = new MutationObserver(log);
    for (const id of ["state", "caption", "progress", "timer", "more-time", "not-finished"]) {
        watch.observe(document.getElementById(id),
                      {childList: true, characterData: true, subtree: true, attributes: true});
    }
    log();
}"""


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("page-browser")
    settings = make_settings(tmp, tts_rate=TTS_RATE)
    seed_interview(settings, BANK, email="warm@example.invalid")
    app = create_app(settings, voice=VoiceOptions(max_follow_ups=0, no_answer_timeout_s=45.0))
    server = LiveServer(app).start(timeout=600)
    try:
        yield {"settings": settings, "server": server, "video": make_video(tmp / "cam.y4m")}
    finally:
        server.stop()


def _transcribe(path: Path) -> str:
    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        rate = w.getframerate()

    async def go() -> str:
        ev = await WhisperSTT(model="tiny.en").recognize(
            buffer=rtc.AudioFrame(pcm.tobytes(), rate, 1, len(pcm))
        )
        return ev.alternatives[0].text.lower()

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's loop
        return pool.submit(asyncio_run, go()).result()


def _poll(page: Any, script: str, timeout_s: float) -> None:
    """Until ``script`` (a function's source) is true; evaluate, not wait_for_function, which
    the app's Content-Security-Policy (no eval) would refuse."""
    page.wait_for_timeout(0)
    deadline = page.evaluate("() => performance.now()") + timeout_s * 1000
    while not page.evaluate(script):
        assert page.evaluate("() => performance.now()") < deadline, f"timed out: {script}"
        page.wait_for_timeout(50)


def test_labels_follow_the_agent_and_i_was_not_finished_continues_the_answer(
    web: dict[str, Any], tmp_path: Path
) -> None:
    settings, server = web["settings"], web["server"]
    seeded = seed_interview(settings, BANK, email="page@example.invalid")
    sc = Script()
    intro, practice_turn = agent_turns(BANK)
    # the applicant: answers, is cut off after the first sentence, presses "I wasn't finished"
    # once the agent has moved on, then says the rest after the agent's "please go on"
    turns = [intro, [sc.go_on], practice_turn]
    wav = tmp_path / "mic.wav"
    reply = reply_seconds(settings, factor=3.0)
    spans = timed_answers_wav(
        settings, wav, turns, [PRACTICE, MORE, COLOUR], reply_s=reply, margin_s=4.0
    )
    with sync_api.sync_playwright() as p:
        browser, page = start_interview(p, server.url, seeded.token, wav, web["video"], watch=WATCH)
        try:
            _poll(page, "() => document.getElementById('state').textContent === 'Hearing you'", 120)
            screenshot(page, "30-hearing-you")
            # the agent moves on after the first sentence: the applicant was not finished
            _poll(page, "() => !document.getElementById('not-finished').disabled", 60 + reply)
            page.click("#not-finished")
            _poll(
                page,
                f"() => document.getElementById('caption').textContent.includes({sc.go_on[:20]!r})",
                30,
            )
            screenshot(page, "31-go-on-with-your-answer")
            assert page.inner_text("#progress").startswith("Practice question")
            _poll(
                page,
                "() => location.pathname.endsWith('/done') || "
                "document.getElementById('state').textContent.startsWith('Finished')",
                spans[-1][1] + 120,
            )
            if not page.url.endswith("/done"):
                screenshot(page, "32-finished")
            page.wait_for_url("**/done", timeout=60_000)
            log = page.evaluate("() => JSON.parse(sessionStorage.getItem('page-log') || '[]')")
        finally:
            browser.close()

    labels = [e["label"] for e in log]
    listening = [i for i, e in enumerate(log) if e["state"] == "listening"]
    asked = next(i for i, e in enumerate(log) if BANK.practice_question in e["caption"])
    goodbye = next(i for i, e in enumerate(log) if "Goodbye" in e["caption"])
    assert listening and min(listening) > asked, labels[: asked + 3]  # not in the introduction
    assert not [i for i in listening if i > goodbye], labels[goodbye:]  # nor after "Goodbye"
    assert "Hearing you" in labels
    assert any(e["more"] for e in log) and any(e["cont"] for e in log)
    # "about to speak" between an answer and the next line
    assert any(e["label"].startswith("One moment") for e in log[asked:goodbye])
    # the timer starts afresh for the question, and is stopped, not frozen, once finished
    first_q = next(i for i, e in enumerate(log) if e["progress"].startswith("Question 1 of 1"))
    assert log[first_q]["timer"] == "1:00", log[first_q]
    assert log[-1]["label"].startswith("Finished") and log[-1]["timer"] == "--:--", log[-1]
    assert not log[-1]["more"] and not log[-1]["cont"]

    with session_scope(seeded.engine) as s:
        answers = {a.question_id: a for a in repo.answers_of(s, seeded.interview_id)}
        for a in answers.values():
            s.expunge(a)
    assert list(answers) == ["practice", "colour"], answers
    practice = answers["practice"]
    assert practice.status is AnswerStatus.answered
    text = practice.transcript.lower()
    assert cut_off_parts_heard(text), text
    assert "green" in answers["colour"].transcript.lower()
    spoken = " ".join(w["word"].lower() for w in practice.words)
    assert cut_off_parts_heard(spoken), spoken
    heard = _transcribe(Recordings(settings.recordings_dir).open_for_read(practice.audio_path))
    assert cut_off_parts_heard(heard), heard
