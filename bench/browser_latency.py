"""Turn latency as an applicant hears it, and how many browser interviews one machine carries.

    .venv/bin/python bench/browser_latency.py [--levels 1 4] [--questions 4] [--json out.json]
                                              [--stt-model base] [--no-scoring] [--no-analysis]

By default the app runs with ``make run``'s settings: the default STT backend and model
(faster-whisper base), each answer scored as it is stored (the settings' judge, Qwen2.5-1.5B,
in its worker process) and integrity analysis after each interview; the table's header says
which settings ran and whether they are make run's.

For each concurrency level N, N applicants take the same short interview at once in headless
Chromium (one browser, N tabs; Debian's /usr/bin/chromium via Playwright), each with a WAV of
espeak-ng answers as the microphone and a test pattern as the camera, against the real app
(`create_app`) under uvicorn: WebSocket audio, VAD, whisper, TTS, storage, camera uploads.
The WAV leaves ``--reply-s`` for each reply (an applicant who waits for the question; by default
the measured whisper speed times N): a level whose replies come later than that has applicants
talking over the agent, which shows up as lost answers.

Turn latency is measured in the page (``window.interviewMetrics``): from the end of the fake
microphone's answer (the last 100 ms chunk above the speech level) to the moment the first
audio of the agent's reply starts playing. That span contains the silence threshold itself
(the agent must hear that much silence to know the answer is over), so figures are printed
both raw and minus the threshold ("response"): the latter is what the machine adds.

"No answer lost": every answer of every interview is stored as answered with its key words.
Targets (issue 16): end of answer -> first agent audio, median <= 1.0 s and p95 <= 1.5 s for
one applicant; p95 <= 1.5 s for four at once, nothing lost. The knee is the first level that
misses its target or loses an answer. With scoring on, the bench also waits for every answer
to be scored and prints how long after the interviews that took ("scored after"). The
machine is shared: the load average is printed with the table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from web_support import (
    CHROMIUM,
    LiveServer,
    agent_turns,
    chromium_args,
    make_settings,
    make_video,
    seed_interview,
    send_csrf,
    timed_answers_wav,
    whisper_seconds,
)

from interviewer.banks.model import Bank
from interviewer.config import Settings
from interviewer.store import repo
from interviewer.store.db import session_scope
from interviewer.web import create_app
from interviewer.web.live import VoiceOptions

TARGET_MEDIAN_S = 1.0  # one applicant
TARGET_P95_S = 1.5  # one applicant, and four at once
ANSWERS = [
    ("I edit documentaries for television.", "television"),
    ("My favourite colour is green, like fresh grass.", "green"),
    ("The elephant is a very large animal with a trunk.", "elephant"),
    ("Paris is the capital city of France.", "paris"),
    ("I drink coffee every morning before work.", "coffee"),
    ("The river flows slowly to the sea.", "river"),
    ("My bicycle has a broken chain.", "bicycle"),
]
PROMPTS = [
    "What is your favourite colour?",
    "Describe an elephant.",
    "What is the capital of France?",
    "What do you drink in the morning?",
    "Where does a river go?",
    "What is wrong with your bicycle?",
]


def _bank(questions: int) -> Bank:
    def question(i: int) -> dict[str, Any]:
        return {
            "id": f"q{i}",
            "prompt": PROMPTS[i],
            "time_limit_s": 60,
            "reference_answer": "r",
            "rubric": {
                "criteria": [
                    {
                        "id": "c",
                        "description": "d",
                        "weight": 1,
                        "levels": [
                            {"score": 0, "descriptor": "n"},
                            {"score": 1, "descriptor": "y"},
                        ],
                    }
                ]
            },
        }

    return Bank.model_validate(
        {
            "id": "bench-browser",
            "title": "Latency bench",
            "domain": "bench",
            "version": 1,
            "description": "Short questions for the browser latency bench.",
            "practice_question": "What do you do?",
            "questions": [question(i) for i in range(questions)],
        }
    )


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def run_level(
    n: int,
    *,
    settings: Any,
    server: LiveServer,
    bank: Bank,
    reply_s: float | None,
    video: Path,
    tmp: Path,
    playwright: Any,
) -> dict[str, Any]:
    # An applicant waits for the question: space the answers for this machine's current speed
    # (whisper is shared, so n interviews wait about n times longer for a transcript).
    decode = whisper_seconds(settings)
    auto = settings.silence_threshold_s + 2 * decode + 0.5
    spacing = reply_s if reply_s is not None else min(35.0, max(4.0, n * auto))
    wav = tmp / f"mic-{n}.wav"
    answers = [text for text, _ in ANSWERS[: len(bank.questions) + 1]]
    timed_answers_wav(settings, wav, agent_turns(bank), answers, reply_s=spacing, margin_s=3.0)
    seeded = [
        seed_interview(settings, bank, email=f"bench-{n}-{i}-{time.time_ns()}@example.invalid")
        for i in range(n)
    ]
    agree = {"recording": "yes", "scoring": "yes", "retention": "yes"}
    for s in seeded:  # consent as the page does: with the CSRF token its invite page gives
        with httpx.Client(base_url=server.url, follow_redirects=True) as client:
            send_csrf(client, f"/i/{s.token}")
            client.post(f"/i/{s.token}/consent", data=agree).raise_for_status()
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=chromium_args(wav, video)
    )
    metrics: dict[int, Any] = {}
    started = time.monotonic()
    try:
        pages = []
        for s in seeded:  # each tab's getUserMedia starts its own copy of the WAV
            page = browser.new_context(viewport={"width": 900, "height": 700}).new_page()
            page.goto(f"{server.url}/i/{s.token}/interview")
            page.wait_for_selector("#start:enabled")
            page.click("#start")
            pages.append(page)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not all(p.url.endswith("/done") for p in pages):
            for i, page in enumerate(pages):
                if page.url.endswith("/done"):
                    continue
                with contextlib.suppress(Exception):  # a tab navigating to its finish page
                    seen = page.evaluate("window.interviewMetrics || null")
                    if seen:  # the finish page has none: keep the interview page's last
                        metrics[i] = seen
            time.sleep(0.5)
        done = sum(p.url.endswith("/done") for p in pages)
    finally:
        browser.close()
    wall = time.monotonic() - started
    scored_after = _scored_after(settings, seeded) if settings.score_answers else None

    turns = [t["latency_ms"] / 1000 for m in metrics.values() if m for t in m["turns"]]
    threshold = settings.silence_threshold_s
    lost = 0
    expected = ["practice", *(q.id for q in bank.questions)]
    for s in seeded:
        with session_scope(s.engine) as db:
            got = {a.question_id: a for a in repo.answers_of(db, s.interview_id)}
        for i, qid in enumerate(expected):
            answer = got.get(qid)
            key = ANSWERS[i][1]
            if (
                answer is None
                or str(answer.status) != "answered"
                or key not in answer.transcript.lower()
            ):
                lost += 1
    response = [max(0.0, t - threshold) for t in turns]
    return {
        "n": n,
        "completed": done,
        "turns": len(turns),
        "median_s": statistics.median(turns) if turns else None,
        "p95_s": _pct(turns, 0.95) if turns else None,
        "max_s": max(turns) if turns else None,
        "median_response_s": statistics.median(response) if response else None,
        "p95_response_s": _pct(response, 0.95) if response else None,
        "answers_lost": lost,
        "answers_expected": n * len(expected),
        "wall_s": round(wall, 1),
        "scored_after_s": scored_after,
        "reply_spacing_s": round(spacing, 1),
        "whisper_3s_clip_s": round(decode, 2),
        "load": os.getloadavg()[0],
    }


def _scored_after(settings: Any, seeded: list[Any], timeout_s: float = 900.0) -> float | None:
    """Seconds until every answer of these interviews has been scored (None: not in time)."""
    started = time.monotonic()
    ids = [s.interview_id for s in seeded]
    while time.monotonic() - started < timeout_s:
        with session_scope(seeded[0].engine) as db:
            waiting = [
                a
                for iid in ids
                for a in repo.answers_of(db, iid)
                if a.question_id != "practice" and a.scored_at is None
            ]
        if not waiting:
            return round(time.monotonic() - started, 1)
        time.sleep(1.0)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = Settings()
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--stt-model", default=defaults.stt_model, choices=["tiny.en", "base"])
    parser.add_argument(
        "--scoring",
        action=argparse.BooleanOptionalAction,
        default=defaults.score_answers,
        help="Score each answer as it is stored (default: as make run)",
    )
    parser.add_argument(
        "--analysis",
        action=argparse.BooleanOptionalAction,
        default=defaults.analyze_integrity,
        help="Integrity analysis after each interview (default: as make run)",
    )
    parser.add_argument(
        "--reply-s",
        type=float,
        default=None,
        help="Where the WAV expects each reply to start after an answer (spacing, not a "
        "limit); default: measured whisper speed x N, at least 4 s.",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    bank = _bank(args.questions)
    tmp = Path(tempfile.mkdtemp(prefix="bench-browser-"))
    settings = make_settings(
        tmp,
        data_dir=Path(tempfile.gettempdir()) / "bench-browser-data",
        stt_model=args.stt_model,
        score_answers=args.scoring,
        analyze_integrity=args.analysis,
    )
    made_run = (
        settings.stt_backend == defaults.stt_backend
        and settings.stt_model == defaults.stt_model
        and settings.scoring_model == defaults.scoring_model
        and settings.score_answers == defaults.score_answers
        and settings.analyze_integrity == defaults.analyze_integrity
    )
    seed_interview(settings, bank, email="warm@example.invalid")
    voice = VoiceOptions(max_follow_ups=0, no_answer_timeout_s=45.0)
    server = LiveServer(create_app(settings, voice=voice)).start(timeout=600)
    video = make_video(tmp / "cam.y4m")
    rows = []
    try:
        with sync_playwright() as playwright:
            for n in args.levels:
                row = run_level(
                    n,
                    settings=settings,
                    server=server,
                    bank=bank,
                    reply_s=args.reply_s,
                    video=video,
                    tmp=tmp,
                    playwright=playwright,
                )
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        server.stop()

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    print(
        f"\nsettings{' (make run defaults)' if made_run else ' (NOT make run defaults)'}: "
        f"{settings.stt_backend} {settings.stt_model}, scoring "
        f"{settings.scoring_model if settings.score_answers else 'off'}, integrity analysis "
        f"{'on' if settings.analyze_integrity else 'off'}, silence threshold "
        f"{settings.silence_threshold_s:.1f} s; targets: median <= {TARGET_MEDIAN_S} s "
        f"(1 applicant), p95 <= {TARGET_P95_S} s"
    )
    print(
        " N  done  turns  median   p95    max  | response median  p95 | lost   wall  load"
        "  whisper(3 s)  scored after"
    )
    for r in rows:
        print(
            f"{r['n']:2d}  {r['completed']:2d}/{r['n']:<2d} {r['turns']:5d}  "
            f"{fmt(r['median_s']):>6} {fmt(r['p95_s']):>6} {fmt(r['max_s']):>6}  | "
            f"{fmt(r['median_response_s']):>14} {fmt(r['p95_response_s']):>5} | "
            f"{r['answers_lost']:2d}/{r['answers_expected']:<3d} "
            f"{r['wall_s']:5.0f}s {r['load']:5.1f}  {r['whisper_3s_clip_s']:5.2f}s"
            f"  {fmt(r['scored_after_s'])}"
        )
    knee = next(
        (
            r["n"]
            for r in rows
            if r["answers_lost"]
            or r["completed"] < r["n"]
            or (r["p95_s"] or 0) > TARGET_P95_S
            or (r["n"] == 1 and (r["median_s"] or 0) > TARGET_MEDIAN_S)
        ),
        None,
    )
    print(f"knee: {knee}" if knee else f"knee: beyond {rows[-1]['n']} (every level met the target)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
