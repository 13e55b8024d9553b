"""A thinking pause in the middle of an answer, in a real browser (issue 16 section 6): Debian's
Chromium driven by Playwright, a real human voice as the microphone (Debian's asterisk prompt
"Please enter your new password followed by ... the pound key", paused 1.8 s mid-phrase), the
app under uvicorn with real VAD, whisper tiny.en, the smart-turn end-of-turn model and the
default voice.

The answer is one answer: the agent does not move on in the pause, the page keeps listening
through it (never "about to speak" before the applicant is done), and the stored answer holds
the words of both parts. The time from the end of speech to the next question's first audio in
the page is printed (speed targets live in bench/browser_latency.py); screenshots go to
test-artifacts/screenshots/ (40-*).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly
from web_support import (
    CUT_OFF_BANK,
    LiveServer,
    agent_turns,
    line_seconds,
    make_settings,
    make_video,
    playwright_or_skip,
    screenshot,
    seed_interview,
    start_interview,
)

from interviewer.store import repo
from interviewer.store.db import session_scope
from interviewer.store.models import AnswerStatus
from interviewer.voice.io import StreamingWavWriter
from interviewer.web import create_app
from interviewer.web.live import VoiceOptions

sync_api = playwright_or_skip()

pytestmark = pytest.mark.slow

BANK = CUT_OFF_BANK  # the practice question, then one question
SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
RATE = 16_000
PAUSE_S = 1.8
# "Please enter your new password followed by | the pound key.": where "by" ends (s), as in
# tests/test_turns.py; the first part stops on "by", which cannot end a phrase
CLIP, CUT_S = "vm-newpassword", 2.74
FIRST_WORDS, REST_WORDS = ("password", "enter"), ("pound", "key")

# every change of the status label or caption, with the page's clock
WATCH = """() => {
    window.pageLog = [];
    const t = (id) => (document.getElementById(id) || {}).textContent || "";
    const log = () => window.pageLog.push({
        at: performance.now(), state: document.getElementById("state").dataset.state,
        label: t("state"), caption: t("caption"), progress: t("progress")});
    const watch = new MutationObserver(log);
    for (const id of ["state", "caption", "progress"]) {
        watch.observe(document.getElementById(id),
                      {childList: true, characterData: true, subtree: true, attributes: true});
    }
    log();
}"""


def _speech() -> tuple[np.ndarray, np.ndarray]:
    """The prompt at 16 kHz, split at the quietest 10 ms within 80 ms of CUT_S (between two
    words)."""
    path = SOUNDS / f"{CLIP}.wav"
    if not path.is_file():
        pytest.fail("asterisk-core-sounds-en-wav is not installed (make apt-test)", pytrace=False)
    raw, sr = sf.read(path, dtype="int16")
    x = resample_poly(raw.astype(np.float32), RATE // sr, 1)
    x = np.clip(x, -32768, 32767).astype(np.int16)
    lo, hi = int((CUT_S - 0.08) * RATE), int((CUT_S + 0.08) * RATE)
    frames = x[lo:hi].astype(np.float32)
    n = frames.size // 160
    energy = (frames[: n * 160].reshape(n, 160) ** 2).mean(axis=1)
    cut = lo + int(np.argmin(energy)) * 160 + 80
    return x[:cut], x[cut:]


def _mic(out: Path, begin_s: float, tail_s: float = 40.0) -> float:
    """Silence until ``begin_s``, the first part, PAUSE_S of silence, the rest, then silence.
    Returns the first part's length in seconds."""
    first, rest = _speech()
    silence = [np.zeros(int(s * RATE), dtype=np.int16) for s in (begin_s, PAUSE_S, tail_s)]
    writer = StreamingWavWriter(out, RATE)
    writer.write(np.concatenate([silence[0], first, silence[1], rest, silence[2]]).tobytes())
    writer.close()
    return len(first) / RATE


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("pause-browser")
    settings = make_settings(tmp)
    seed_interview(settings, BANK, email="warm@example.invalid")
    app = create_app(settings, voice=VoiceOptions(max_follow_ups=0, no_answer_timeout_s=45.0))
    server = LiveServer(app).start(timeout=600)
    try:
        yield {"settings": settings, "server": server, "video": make_video(tmp / "cam.y4m")}
    finally:
        server.stop()


def _poll(page: Any, script: str, timeout_s: float) -> None:
    """Until ``script`` is true (evaluate, not wait_for_function: the page's CSP has no eval)."""
    deadline = page.evaluate("() => performance.now()") + timeout_s * 1000
    while not page.evaluate(script):
        assert page.evaluate("() => performance.now()") < deadline, f"timed out: {script}"
        page.wait_for_timeout(50)


def _the_practice_answer(seeded: Any) -> str:
    """The interview's only stored answer, the practice one, answered: its transcript."""
    with session_scope(seeded.engine) as s:
        answers = {a.question_id: a for a in repo.answers_of(s, seeded.interview_id)}
        for a in answers.values():
            s.expunge(a)
    assert list(answers) == ["practice"], answers
    practice = answers["practice"]
    assert practice.status is AnswerStatus.answered
    return practice.transcript.lower()


def _on_to_question_1(page: Any, shot: str) -> tuple[list[Any], list[Any]]:
    """Until question 1 is on screen after a reply: the page's log and its turn latencies."""
    _poll(
        page,
        "() => document.getElementById('progress').textContent.startsWith('Question 1')"
        " && window.interviewMetrics.turns.length > 0",
        60,
    )
    screenshot(page, shot)
    return page.evaluate("() => window.pageLog"), page.evaluate(
        "() => window.interviewMetrics.turns"
    )


def test_a_mid_answer_pause_is_not_cut_off(web: dict[str, Any], tmp_path: Path) -> None:
    settings, server = web["settings"], web["server"]
    assert settings.silence_threshold_s > PAUSE_S + 0.5  # the maximum pause, by default
    seeded = seed_interview(settings, BANK, email="pause@example.invalid")
    intro = agent_turns(BANK)[0]
    wav = tmp_path / "mic.wav"
    # the agent starts about 2.5 s after getUserMedia; the answer 4 s after its introduction
    begin = 2.5 + sum(line_seconds(settings, intro)) + 4.0
    first_s = _mic(wav, begin)
    with sync_api.sync_playwright() as p:
        browser, page = start_interview(p, server.url, seeded.token, wav, web["video"], watch=WATCH)
        try:
            _poll(page, "() => document.getElementById('state').textContent === 'Hearing you'", 120)
            screenshot(page, "40-hearing-the-first-part")
            # sample the label through the rest of the first part and the pause (besides the
            # observer's log): "Hearing you" shows soon after the first part starts
            sampled = []
            heard = page.evaluate("() => performance.now()")
            shot = False
            while (page.evaluate("() => performance.now()") - heard) / 1000 < first_s + PAUSE_S:
                sampled.append(page.inner_text("#state"))
                if not shot and (page.evaluate("() => performance.now()") - heard) / 1000 > (
                    first_s + PAUSE_S / 2
                ):
                    screenshot(page, "41-in-the-pause")
                    shot = True
                page.wait_for_timeout(100)
            log, turns = _on_to_question_1(page, "42-next-question")
        finally:
            browser.close()

    asked = next(i for i, e in enumerate(log) if BANK.practice_question in e["caption"])
    moved_on = next(i for i, e in enumerate(log) if e["progress"].startswith("Question 1"))
    latency_s = turns[0]["latency_ms"] / 1000
    # the end of speech on the page's clock (its own level meter, 100 ms chunks)
    ended_at = turns[0]["at"] - turns[0]["latency_ms"]
    print(
        f"end of speech -> next question's first audio in the page: {latency_s:.2f} s "
        f"(maximum pause {settings.silence_threshold_s} s; labels sampled: {sorted(set(sampled))})"
    )
    about_to_speak = [e for e in log[asked:moved_on] if e["state"] == "thinking"]
    # never "about to speak" before the applicant was done, nor moved on in the pause
    early = [e for e in about_to_speak if e["at"] < ended_at]
    assert not early, (early, ended_at, [(e["at"], e["label"]) for e in log[asked:moved_on]])
    assert log[moved_on]["at"] > ended_at
    assert sampled and not [x for x in sampled if "about to speak" in x.lower()], sampled
    assert len(turns) == 1, turns  # one reply: the agent did not answer the first part
    assert 0 < latency_s < 10, turns

    text = _the_practice_answer(seeded)
    assert any(w in text for w in FIRST_WORDS) and any(w in text for w in REST_WORDS), text


SECOND = "vm-goodbye"  # "Goodbye.": a second, finished sentence after the first
TAKE_BACK_PAUSE_S = 1.6


def test_speech_right_after_the_turn_ended_takes_it_back(
    web: dict[str, Any], tmp_path: Path
) -> None:
    """An opening whose maximum pause (1.0 s) is shorter than the applicant's pause between two
    sentences (1.6 s): the turn ends inside the pause and the interviewer starts its reply; the
    second sentence takes the turn back. The page stops the reply at once, keeps the practice
    question on screen, and the stored practice answer holds both sentences."""
    from sqlalchemy import select

    from interviewer.store.models import Opening

    settings, server = web["settings"], web["server"]
    seeded = seed_interview(settings, BANK, email="takeback@example.invalid", slug="quick")
    with session_scope(seeded.engine, write=True) as s:
        s.scalars(select(Opening).where(Opening.slug == "quick")).one().silence_threshold_s = 1.0
    intro = agent_turns(BANK)[0]
    first, rest = _speech()
    raw, sr = sf.read(SOUNDS / f"{SECOND}.wav", dtype="int16")
    second = np.clip(resample_poly(raw.astype(np.float32), RATE // sr, 1), -32768, 32767)
    begin = 2.5 + sum(line_seconds(settings, intro)) + 4.0
    wav = tmp_path / "mic.wav"
    silence = [np.zeros(int(s * RATE), dtype=np.int16) for s in (begin, TAKE_BACK_PAUSE_S, 40.0)]
    writer = StreamingWavWriter(wav, RATE)
    writer.write(
        np.concatenate(
            [silence[0], first, rest, silence[1], second.astype(np.int16), silence[2]]
        ).tobytes()
    )
    writer.close()
    with sync_api.sync_playwright() as p:
        browser, page = start_interview(p, server.url, seeded.token, wav, web["video"], watch=WATCH)
        try:
            _poll(page, "() => document.getElementById('state').textContent === 'Hearing you'", 120)
            # the reply to the first sentence starts, then the second sentence stops it
            _poll(page, "() => window.interviewMetrics.turns.length > 0", 30)
            _poll(page, "() => document.getElementById('state').textContent === 'Hearing you'", 10)
            screenshot(page, "43-taken-back")
            log, turns = _on_to_question_1(page, "44-next-question-after-the-whole-answer")
        finally:
            browser.close()

    # two replies began: the one taken back and the one after the whole answer
    assert len(turns) == 2, turns
    print(
        "replies began "
        + ", ".join(f"{t['latency_ms'] / 1000:.2f} s" for t in turns)
        + " after the end of speech"
    )
    taken_back_at = turns[0]["at"]
    # between the two replies the page showed the practice question, never question 1
    between = [e for e in log if taken_back_at <= e["at"] < turns[1]["at"] - 50]
    assert between and all(not e["progress"].startswith("Question 1") for e in between), between
    assert any(e["label"] == "Hearing you" for e in between), between
    # what the withdrawn reply was about to say never reached the screen: after the reply was
    # stopped the practice question is the caption until the next reply
    spoke = next(i for i, e in enumerate(between) if e["state"] == "speaking")
    stopped = next(i for i, e in enumerate(between) if i > spoke and e["state"] != "speaking")
    shown = [(e["state"], e["caption"]) for e in between]
    assert all(c == BANK.practice_question for _, c in shown[stopped:]), shown
    text = _the_practice_answer(seeded)
    assert any(w in text for w in REST_WORDS) and "bye" in text, text
