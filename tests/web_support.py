"""Helpers for the web tests (tests/test_web_*.py): settings, a seeded interview, a fixture bank,
the app under uvicorn, and Debian's Chromium for the staff-page browser tests.

The fixture bank is short on purpose (two questions, one-line prompts) so that a whole browser
interview takes about a minute; each answer uses words no other answer uses, so a transcript
holding another answer's words was misfiled.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from interviewer.banks.model import Bank
from interviewer.config import Settings
from interviewer.store import repo
from interviewer.store.db import create_db_engine, migrate, session_scope

SECRET = "test-secret-key-for-web-tests"


def bank_question(qid: str, prompt: str, limit: int = 60) -> dict[str, Any]:
    """A question with a one-criterion 0/1 rubric: enough for tests of everything but scoring."""
    return {
        "id": qid,
        "prompt": prompt,
        "time_limit_s": limit,
        "reference_answer": "r",
        "rubric": {
            "criteria": [
                {
                    "id": "c",
                    "description": "d",
                    "weight": 1,
                    "levels": [{"score": 0, "descriptor": "n"}, {"score": 1, "descriptor": "y"}],
                }
            ]
        },
    }


FIXTURE_BANK = Bank.model_validate(
    {
        "id": "web-fixture",
        "title": "Browser test screen",
        "domain": "test",
        "version": 1,
        "description": "Two short questions for browser tests.",
        "practice_question": "What do you do?",
        "questions": [
            bank_question("colour", "What is your favourite colour?"),
            bank_question("animal", "Describe an elephant."),
        ],
    }
)

FIXTURE_ANSWERS = {
    "practice": ("I edit documentaries for television.", {"documentar", "television"}),
    "colour": ("My favourite colour is green, like fresh grass.", {"green", "grass"}),
    "animal": ("The elephant is a very large animal with a trunk.", {"elephant", "trunk"}),
}


CUT_OFF_BANK = Bank.model_validate(
    {
        "id": "cut-off",
        "title": "Cut off",
        "domain": "test",
        "version": 1,
        "description": "One question, for an applicant who was not finished.",
        "practice_question": "What do you do?",
        "questions": [bank_question("colour", "What is your favourite colour?")],
    }
)
CUT_OFF_ANSWERS = (
    "I edit documentaries for television.",
    "On weekends I also repair old bicycles.",  # the rest of the practice answer
    "My favourite colour is green, like fresh grass.",
)
"""The practice answer in two parts (the agent moves on after the first), then question 1's."""


def cut_off_parts_heard(text: str) -> bool:
    """Whether a transcript holds words of both parts of the cut-off practice answer (any one
    of several per part: whisper tiny.en mishears espeak-ng now and then, "documentaries" as
    "knockumentary", "bicycles" as "by a sickle")."""
    return any(w in text for w in ("documentar", "television")) and any(
        w in text for w in ("bicycle", "weekend", "repair")
    )


def make_settings(tmp: Path, data_dir: Path | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir or tmp / "data",
        "database_url": f"sqlite:///{tmp / 'web.sqlite'}",
        "recordings_dir": tmp / "recordings",
        "secret_key": SECRET,
        "stt_model": "tiny.en",
        # no scoring model or post-interview detectors unless a test asks for them
        "score_answers": False,
        "analyze_integrity": False,
        # TestClient's host, besides the loopback names LiveServer and browsers use
        "allowed_hosts": ["127.0.0.1", "localhost", "testserver"],
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Seeded:
    token: str
    interview_id: int
    invite_id: int
    engine: Any


def seed_interview(
    settings: Settings,
    bank: Bank = FIXTURE_BANK,
    *,
    ttl: timedelta = timedelta(days=1),
    email: str = "applicant@example.invalid",
    slug: str | None = None,
) -> Seeded:
    from interviewer import invites

    engine = create_db_engine(settings.resolved_database_url)
    migrate(engine)
    with session_scope(engine) as s:
        version = repo.publish_bank(s, bank)
        from sqlalchemy import select

        from interviewer.store.models import Opening

        slug = slug or f"web-{bank.id}"
        opening = s.scalars(select(Opening).where(Opening.slug == slug)).first()
        if opening is None:
            opening = repo.create_opening(s, slug=slug, title=bank.title, bank_version=version)
        applicant = repo.create_applicant(s, name="Test Applicant", email=email)
        issued = invites.issue_invite(s, settings, opening=opening, applicant=applicant, ttl=ttl)
    return Seeded(issued.token, issued.interview_id, issued.invite_id, engine)


# --- a real server and a real browser ----------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
]


def chromium_args(wav: Path | None, video: Path | None, *, grant: bool = True) -> list[str]:
    """The flags that make a WAV the microphone and a .y4m the camera (see shared/VOICE.md).

    ``grant=False`` leaves out --use-fake-ui-for-media-stream, so permissions follow the
    browser context (and can be denied).
    """
    args = list(CHROMIUM_FLAGS)
    if grant:
        args.append("--use-fake-ui-for-media-stream")
    if wav is not None:
        args.append(f"--use-file-for-fake-audio-capture={wav.resolve()}%noloop")
    if video is not None:
        args.append(f"--use-file-for-fake-video-capture={video.resolve()}")
    return args


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """The app under uvicorn in a thread, on a free port (the way `interviewer serve` runs it)."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        import threading

        import uvicorn

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            ws_max_size=64 * 1024,
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, *, wait_voice: bool = True, timeout: float = 120.0) -> LiveServer:
        import time

        import httpx

        self.thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"{self.url}/healthz", timeout=2).json()
                if health["voice_ready"] or not wait_voice:
                    return self
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        raise TimeoutError("the web app did not become ready")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@contextmanager
def staff_server(settings: Settings, *, timeout: float = 120.0) -> Iterator[LiveServer]:
    """The app under uvicorn for tests of the staff pages: no voice warm-up (nobody is
    interviewed), stopped on the way out."""
    from interviewer.web import create_app
    from interviewer.web.live import VoiceOptions

    app = create_app(settings, voice=VoiceOptions(warm_up=False))
    server = LiveServer(app).start(wait_voice=False, timeout=timeout)
    try:
        yield server
    finally:
        server.stop()


# --- staff pages in Chromium (tests/test_*_browser.py) ------------------------------------------
#
#   sync_api = playwright_or_skip()          # at module level: skips without Playwright/Chromium
#   @pytest.fixture(scope="module")
#   def browser():
#       with chromium() as b:                # one browser per module
#           yield b
#   page = new_page(browser)                 # a fresh context (own cookies) per test
#   page.goto(f"{url}/openings"); sign_in(page, EMAIL, PASSWORD); screenshot(page, "area-name")

SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
WAIT_MS = 30_000  # generous: the machine is shared


def playwright_or_skip() -> Any:
    """Playwright's sync API; skips the calling test module (call it at module level) when
    Playwright or Debian's Chromium is missing."""
    import pytest

    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"{CHROMIUM} missing: `make test` installs Debian's chromium", allow_module_level=True
        )
    return sync_api


@contextmanager
def chromium(*args: str) -> Iterator[Any]:
    """Debian's Chromium, headless, with CHROMIUM_FLAGS plus ``args``; closed on the way out."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_FLAGS, *args]
        )
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Any, *, width: int = 1280, height: int = 900, **context: Any) -> Any:
    """A page in a fresh browser context (no cookies yet), waiting up to WAIT_MS by default.

    The app's Content-Security-Policy is bypassed unless ``bypass_csp=False``: Playwright polls
    ``wait_for_function`` predicates with eval, which the policy refuses. test_csp_browser.py
    checks the pages under the policy itself.
    """
    context.setdefault("bypass_csp", True)
    ctx = browser.new_context(viewport={"width": width, "height": height}, **context)
    ctx.set_default_timeout(WAIT_MS)
    return ctx.new_page()


def give_consent(page: Any) -> None:
    """On the consent page: tick its three boxes and send it, on to the device check."""
    for box in ("#c-recording", "#c-scoring", "#c-retention"):
        page.check(box)
    page.click("button[type=submit]")
    page.wait_for_url("**/check")


def start_interview(
    playwright: Any, url: str, token: str, wav: Path, video: Path, *, watch: str | None = None
) -> tuple[Any, Any]:
    """Chromium with ``wav`` as the microphone and ``video`` as the camera, through the consent
    page to an interview started with its Start button; ``watch`` (a script) runs just before
    the click. Returns (browser, page): the caller closes the browser."""
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=chromium_args(wav, video)
    )
    try:
        page = browser.new_context(
            bypass_csp=False, viewport={"width": 1100, "height": 860}
        ).new_page()
        page.goto(f"{url}/i/{token}")
        give_consent(page)
        page.goto(f"{url}/i/{token}/interview")
        page.wait_for_selector("#start:enabled")
        if watch is not None:
            page.evaluate(watch)
        page.click("#start")
    except BaseException:
        browser.close()
        raise
    return browser, page


def sign_in(page: Any, email: str, password: str) -> None:
    """Fill in and send the staff sign-in form the page shows."""
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")


def screenshot(page: Any, name: str) -> Path:
    """The whole page as test-artifacts/screenshots/<name>.png (look at it: what a person sees)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def make_video(path: Path, seconds: int = 10) -> Path:
    """A .y4m test pattern for the fake camera (ffmpeg lavfi testsrc)."""
    import subprocess

    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=15",
            "-t",
            str(seconds),
            "-pix_fmt",
            "yuv420p",
            str(path),
        ],
        check=True,
    )
    return path


def line_seconds(settings: Settings, texts: list[str]) -> list[float]:
    """How long the agent takes to say each line (the session's voice, from its cache)."""
    import asyncio

    from interviewer.voice.stack import build_tts

    async def go() -> list[float]:
        tts = build_tts(settings)
        out = []
        for text in texts:
            pcm = await tts.pcm(text)
            out.append(len(pcm) / 2 / tts.sample_rate)
        return out

    # In a thread of its own: Playwright's sync API keeps an event loop on the main thread.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def reply_seconds(settings: Settings, *, factor: float = 2.0) -> float:
    """How long after an answer ends the agent should start its reply on this machine now:
    the silence threshold plus (generously) the time whisper takes for a short answer.

    The fake microphone cannot wait for the agent, so on a busy machine the answers must be
    spaced further apart; measuring first keeps the test correct there and quick elsewhere.
    """
    decode = whisper_seconds(settings)
    return min(35.0, max(2.0, settings.silence_threshold_s + factor * decode + 0.5))


def whisper_seconds(settings: Settings) -> float:
    """Seconds whisper takes, right now, to transcribe a 3 s answer (the model loaded)."""
    import tempfile
    import time
    from concurrent.futures import ThreadPoolExecutor

    from livekit import rtc

    from interviewer.voice.io import answers_wav, read_wav
    from interviewer.voice.stt import WhisperSTT

    with tempfile.TemporaryDirectory() as tmp:
        clip_path = Path(tmp) / "clip.wav"
        answers_wav(["My favourite colour is green, like fresh grass."], clip_path, lead_s=0.0)
        clip, rate = read_wav(clip_path)

    async def go() -> float:
        stt = WhisperSTT(backend=settings.stt_backend, model=settings.stt_model)
        await stt.warm_up()
        started = time.monotonic()
        await stt.recognize(buffer=rtc.AudioFrame(clip.tobytes(), rate, 1, len(clip)))
        return time.monotonic() - started

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio_run, go()).result()


def asyncio_run(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


def agent_turns(bank: Bank, *, resume_at: int | None = None) -> list[list[str]]:
    """What the agent says before each answer, with no follow-ups (a recorded applicant):
    turn 0 opens the interview (or resumes it at question ``resume_at``)."""
    from interviewer.interview import Script

    sc = Script()
    total = len(bank.questions)
    if resume_at is None:
        turns = [
            [
                sc.greeting.format(title=bank.title),
                sc.consent,
                sc.practice_intro,
                bank.practice_question,
            ]
        ]
        first = 0
        after_first = [sc.practice_done]
    else:
        turns = [[sc.resume, bank.questions[resume_at].prompt]]
        first = resume_at + 1
        after_first = [sc.ack]
    for i in range(first, total):
        lead = after_first if i == first else [sc.ack]
        turns.append(
            [*lead, sc.question_intro.format(number=i + 1, total=total), bank.questions[i].prompt]
        )
    return turns


def timed_answers_wav(
    settings: Settings,
    out: Path,
    turns: list[list[str]],
    answers: list[str],
    *,
    start_s: float = 2.5,
    reply_s: float = 2.0,
    margin_s: float = 2.5,
    tail_s: float = 20.0,
) -> list[tuple[float, float]]:
    """The applicant's microphone for a browser test: each answer starts ``margin_s`` after the
    agent should have finished the turn before it.

    The fake microphone plays on regardless of the agent, so the file must be laid out on the
    agent's timeline: it starts at getUserMedia, the agent about ``start_s`` later, and each
    reply about ``reply_s`` after an answer ends (end-of-turn silence + transcription). Timing
    errors do not add up: every turn is placed relative to the answer before it. Returns each
    answer's (start, end) in seconds.
    """
    import tempfile

    import numpy as np

    from interviewer.voice.io import StreamingWavWriter, answers_wav, read_wav

    rate = 16_000
    parts: list[np.ndarray] = []
    spans: list[tuple[float, float]] = []
    t = 0.0
    agent_at = start_s
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(answers):
            speak = sum(line_seconds(settings, turns[i]))
            begin = agent_at + speak + margin_s
            clip_path = Path(tmp) / f"{i}.wav"
            answers_wav([text], clip_path, lead_s=0.0, gap_s=0.0, sample_rate=rate)
            clip, _ = read_wav(clip_path)
            parts.append(np.zeros(int((begin - t) * rate), dtype=np.int16))
            parts.append(clip)
            end = begin + len(clip) / rate
            spans.append((begin, end))
            t = end
            agent_at = end + reply_s
    parts.append(np.zeros(int(tail_s * rate), dtype=np.int16))
    writer = StreamingWavWriter(out, rate)
    writer.write(np.concatenate(parts).tobytes())
    writer.close()
    return spans


# --- CSRF and staff sign-in for HTTP tests -----------------------------------------------------


def csrf_token(client: Any, path: str = "/login") -> str:
    """The CSRF token a page gives this client (its cookie is kept by the client)."""
    import re

    page = client.get(path)
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
    if found is None:
        raise AssertionError(f"{path} has no csrf-token meta tag")
    return found.group(1)


def staff_login(client: Any, email: str, password: str) -> Any:
    """Sign ``client`` in through the real /login form (with its CSRF token); returns it."""
    response = client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_token(client, "/login")},
        follow_redirects=False,
    )
    assert response.status_code == 303, f"{email} did not get in: {response.text[:500]}"
    return client


def send_csrf(client: Any, path: str = "/login") -> Any:
    """Make every later request of ``client`` carry a valid X-CSRF-Token header."""
    client.headers["X-CSRF-Token"] = csrf_token(client, path)
    return client
