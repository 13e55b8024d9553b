"""Load on one machine: N simulated applicants at once, and what happens past the knee.

    .venv/bin/python bench/load.py --levels 1                      # does it work (~5 min)
    .venv/bin/python bench/load.py --levels 1 2 3 4 6 8 \
        --json bench/results/load.json                             # the knee, on an idle machine

By default it runs what ``make run`` runs: the settings' STT backend and model (faster-whisper
base), scoring on with the settings' judge (Qwen2.5-1.5B) and integrity analysis after each
interview, both in their background processes behind the live gate (``interviewer.priority``);
the first line printed says so. ``--scoring none --no-analysis`` measures the voice path alone.

Each level N runs N interviews at once in this process, the way the web server (and each
LiveKit worker) runs them: one shared whisper model and Silero VAD, a pyttsx3 voice per
interview, one scoring worker process fed as answers are stored (``LiveScoring``), SQLite (or
``--db`` PostgreSQL) and the recordings folder. Each applicant is a WAV of the bank's strong
demo answers spoken by espeak-ng (``voice/io.py``), played in real time, waiting for each
question like a polite applicant (``--impatient``: answers at fixed times instead, talking over
a slow agent, as a real person might). ``--browsers K`` adds K applicants in headless Chromium
against the real app (bench/browser_latency.py), at the same time.

Reported per level:

- turn latency, end of the applicant's speech -> first audio of the agent's next line, p50/p95,
  raw and minus the silence threshold (the part the machine adds);
- transcript lag, end of speech -> last word transcribed: the tail whisper leaves (speech is
  transcribed segment by segment at each 0.3 s pause while the applicant speaks), and how
  often Silero warned that the VAD fell behind real time;
- scoring backlog (answers stored but not scored yet, sampled every second) and how long the
  scorer needed after the last interview ended; how long integrity analysis took;
- CPU (whole machine, and this process with its children) and peak RSS (same);
- whether every answer was stored: status answered, a transcript, a WAV of at least 0.5 s.

The knee is the largest N whose p95 turn latency is <= ``--target`` (1.5 s) with nothing lost.
``--capacity C`` admits at most C interviews at once and lines the rest up, with the product's
own gate (``transports/admission.py``: ``INTERVIEWER_MAX_LIVE_INTERVIEWS``; a LiveKit worker's
``--max-interviews`` does the same): it prints how long the queued applicants waited, to
check that past the knee the system queues instead of losing answers. The machine is shared:
the load average is printed with every level.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path
from typing import Any

import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from interviewer.admission import Admission
from interviewer.banks.check import load_banks
from interviewer.banks.model import Bank
from interviewer.config import get_settings
from interviewer.proctoring.pool import AnalysisPool
from interviewer.scoring.live import LiveScoring, pending_answers
from interviewer.store import repo
from interviewer.store.db import create_db_engine, migrate, session_scope
from interviewer.store.storage import LocalStorage
from interviewer.voice.io import WavAudioInput, WavAudioOutput, answers_wav
from interviewer.voice.session import InterviewReport, SessionOptions, run_interview
from interviewer.voice.stack import VoiceModels
from interviewer.voice.stt import WhisperSTT
from interviewer.voice.tts import Pyttsx3TTS
from interviewer.voice.vad import load_vad

VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb+m3"]


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def _bank(settings: Any, bank_id: str, questions: int) -> tuple[Bank, list[str]]:
    bank = next(b for b in load_banks(settings.banks_dir) if b.id == bank_id)
    if questions:
        data = bank.model_dump(mode="json")
        data["questions"] = data["questions"][:questions]
        bank = Bank.model_validate(data)
    demo = yaml.safe_load((settings.banks_dir / "demo_answers" / f"{bank.id}.yaml").read_text())
    texts = [demo["practice"]["strong"]] + [demo["answers"][q.id]["strong"] for q in bank.questions]
    return bank, texts


class VadLate(logging.Handler):
    """Counts Silero's "VAD inference is slower than realtime" warnings (CPU starvation: the
    VAD must keep up with the audio) and keeps the largest delay it reported."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.max_delay_s = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        if "slower than realtime" in record.getMessage():
            self.count += 1
            self.max_delay_s = max(self.max_delay_s, float(getattr(record, "delay", 0.0)))


class Monitor:
    """Samples CPU, RSS and the scoring backlog once a second in a thread (never the loop)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.proc = psutil.Process()
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _procs(self) -> list[psutil.Process]:
        return [self.proc, *self.proc.children(recursive=True)]

    def _run(self) -> None:
        psutil.cpu_percent()
        seen: dict[int, psutil.Process] = {}
        while not self._stop.wait(1.0):
            cpu = rss = 0.0
            for p in self._procs():
                p = seen.setdefault(p.pid, p)  # cpu_percent needs the same object each time
                with contextlib.suppress(psutil.Error):
                    cpu += p.cpu_percent()
                    rss += p.memory_info().rss
            try:
                backlog = len(pending_answers(self.engine, limit=100_000))
            except Exception:  # a busy SQLite: skip this sample
                backlog = -1
            self.samples.append(
                {
                    "t": time.monotonic(),
                    "cpu_machine": psutil.cpu_percent(),
                    "cpu_procs": cpu,
                    "rss_mb": rss / 2**20,
                    "backlog": backlog,
                }
            )

    def start(self) -> Monitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _stored(engine: Any, storage: LocalStorage, ids: list[int], expected: list[str]) -> dict:
    """Every answer of every interview: stored as answered, with a transcript and its WAV."""
    lost: list[str] = []
    for iid in ids:
        with session_scope(engine) as s:
            got = {a.question_id: a for a in repo.answers_of(s, iid)}
        for qid in expected:
            a = got.get(qid)
            why = None
            if a is None:
                why = "missing"
            elif str(a.status) != "answered" or not (a.transcript or "").strip():
                why = f"status {a.status}"
            elif not a.audio_path:
                why = "no audio"
            else:
                try:
                    with wave.open(str(storage.open_for_read(a.audio_path))) as w:
                        if w.getnframes() / w.getframerate() < 0.5:
                            why = "audio too short"
                except (OSError, ValueError, wave.Error) as err:
                    why = f"audio unreadable: {err}"
            if why:
                lost.append(f"interview {iid} {qid}: {why}")
    return {"expected": len(ids) * len(expected), "lost": lost}


async def run_level(n: int, args: argparse.Namespace, ctx: dict[str, Any]) -> dict[str, Any]:
    settings, bank = ctx["settings"], ctx["bank"]
    tmp = Path(tempfile.mkdtemp(prefix=f"load-{n}-"))
    db_url = args.db or f"sqlite:///{tmp / 'db.sqlite'}"
    engine = create_db_engine(db_url)
    migrate(engine)
    storage = LocalStorage(tmp / "recordings")
    ids = []
    with session_scope(engine) as s:
        version = repo.publish_bank(s, bank)
        opening = repo.create_opening(s, slug=f"load-{n}-{time.time_ns()}", title="Load",
                                      bank_version=version)  # fmt: skip
        for i in range(n):
            applicant = repo.create_applicant(s, name=f"A{i}", email=f"load{i}@example.invalid")
            ids.append(repo.create_interview(s, opening=opening, applicant=applicant).id)

    scoring = None
    if args.scoring != "none":
        scoring = LiveScoring(db_url, model=args.scoring, model_dir=settings.model_dir)
        scoring.prepare(ids[0])  # the model loads while the interviews start, as in the app
    analysis = None
    analyses: list[asyncio.Task[Any]] = []
    if args.analysis:
        analysis = AnalysisPool(db_url, storage.root, settings.model_dir)
    gate = Admission(args.capacity)  # the product's own line (INTERVIEWER_MAX_LIVE_INTERVIEWS)
    waits: list[float] = []
    monitor = Monitor(engine).start()
    vad_late = VadLate()
    silero_log = logging.getLogger("livekit.plugins.silero")
    silero_log.setLevel(logging.WARNING)
    silero_log.addHandler(vad_late)

    analyzed_at: list[float] = []

    async def analyzed(iid: int) -> None:
        assert analysis is not None
        await analysis.analyze(iid)
        analyzed_at.append(time.monotonic())

    async def applicant(i: int, iid: int) -> InterviewReport:
        queued = time.monotonic()
        slot = await gate.wait_turn()
        waits.append(time.monotonic() - queued)
        try:
            out = WavAudioOutput(None)
            audio_in = WavAudioInput(ctx["wavs"][i % len(ctx["wavs"])])
            try:
                report = await run_interview(
                    engine,
                    iid,
                    audio_input=audio_in,
                    audio_output=out,
                    recordings=storage,
                    models=VoiceModels(
                        stt=ctx["stt"],
                        vad=ctx["vad"],
                        tts=Pyttsx3TTS(cache_dir=ctx["tts_cache"]),
                    ),
                    options=SessionOptions(
                        max_follow_ups=0, hold_input=not args.impatient, timeout_s=args.timeout
                    ),
                    on_answer=scoring.submit if scoring is not None else None,
                )
                if analysis is not None and report.completed:  # as the server does, at once
                    analyses.append(asyncio.create_task(analyzed(iid)))
                return report
            finally:
                await out.aclose()
        finally:
            gate.release(slot)

    browser: dict[str, Any] = {}
    browser_thread = None
    if args.browsers:
        browser_thread = threading.Thread(
            target=lambda: browser.update(_browsers(args.browsers, args, tmp)), daemon=True
        )
        browser_thread.start()
    started = time.monotonic()
    results = await asyncio.gather(*(applicant(i, iid) for i, iid in enumerate(ids)),
                                   return_exceptions=True)  # fmt: skip
    interviews_s = time.monotonic() - started
    interviews_end = time.monotonic()
    drain_s = None
    if scoring is not None:
        t0 = time.monotonic()
        try:
            await scoring.wait(timeout=args.scoring_timeout)
            drain_s = time.monotonic() - t0
        except TimeoutError:
            pass
        finally:
            await scoring.aclose()
    analysis_s = None
    errors_analysis: list[str] = []
    if analysis is not None:
        done = await asyncio.gather(*analyses, return_exceptions=True)
        errors_analysis = [repr(d) for d in done if isinstance(d, BaseException)]
        if analyzed_at:
            analysis_s = max(analyzed_at) - interviews_end
        analysis.close()
    if browser_thread is not None:
        await asyncio.to_thread(browser_thread.join, 900)
    monitor.stop()
    silero_log.removeHandler(vad_late)

    reports = [r for r in results if isinstance(r, InterviewReport)]
    errors = [repr(r) for r in results if not isinstance(r, InterviewReport)] + errors_analysis
    threshold = reports[0].silence_threshold_s if reports else settings.silence_threshold_s
    turns = [t for r in reports for t in r.turns]
    lat = [t.turn_latency_s for t in turns if t.turn_latency_s is not None]
    lag = [t.transcript_lag_s for t in turns if t.transcript_lag_s is not None]
    stored = _stored(engine, storage, ids, ["practice", *(q.id for q in bank.questions)])
    samples = monitor.samples
    row = {
        "n": n,
        "completed": sum(r.completed for r in reports),
        "errors": errors,
        "turns": len(lat),
        "turn_p50_s": _pct(lat, 0.5),
        "turn_p95_s": _pct(lat, 0.95),
        "response_p50_s": _pct([x - threshold for x in lat], 0.5),
        "response_p95_s": _pct([x - threshold for x in lat], 0.95),
        "transcript_lag_p50_s": _pct(lag, 0.5),
        "transcript_lag_p95_s": _pct(lag, 0.95),
        "answers_expected": stored["expected"],
        "answers_lost": stored["lost"],
        "scoring_backlog_max": (
            max((s["backlog"] for s in samples), default=None) if scoring is not None else None
        ),
        "scoring_drain_s": drain_s,
        "scoring_dropped": len(scoring.dropped) if scoring is not None else 0,
        "analysis_after_s": analysis_s,
        "vad_late_warnings": vad_late.count,
        "vad_late_max_s": round(vad_late.max_delay_s, 3),
        "cpu_machine_avg": statistics.mean(s["cpu_machine"] for s in samples) if samples else None,
        "cpu_procs_max": max((s["cpu_procs"] for s in samples), default=None),
        "rss_max_mb": max((s["rss_mb"] for s in samples), default=None),
        "queued_wait_max_s": max(waits, default=0.0),
        "queued": sum(w > 1.0 for w in waits),
        "interviews_s": round(interviews_s, 1),
        "threshold_s": threshold,
        "load": os.getloadavg()[0],
    }
    if browser:
        row["browsers"] = browser
    return row


def _browsers(k: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """K applicants in Chromium against the real app, in this process (its own model copy)."""
    import browser_latency
    from playwright import sync_api
    from web_support import LiveServer, make_settings, make_video

    from interviewer.web import create_app
    from interviewer.web.live import VoiceOptions

    settings = make_settings(tmp / "web", stt_model=args.stt_model)
    server = LiveServer(create_app(settings, voice=VoiceOptions(max_follow_ups=0))).start()
    try:
        with sync_api.sync_playwright() as pw:
            return browser_latency.run_level(
                k,
                settings=settings,
                server=server,
                bank=browser_latency._bank(2),
                reply_s=None,
                video=make_video(tmp / "cam.y4m"),
                tmp=tmp,
                playwright=pw,
            )
    finally:
        server.stop()


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.2f}{unit}"
    return f"{v}{unit}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1])
    parser.add_argument("--bank", default="dermatology")
    parser.add_argument("--questions", type=int, default=2, help="First N questions (0: all).")
    parser.add_argument(
        "--stt-model", default=get_settings().stt_model, choices=["tiny.en", "base"]
    )
    defaults = get_settings()
    parser.add_argument("--scoring", default=defaults.scoring_model if defaults.score_answers
                        else "none", choices=["none", "smollm2-135m", "qwen2.5-1.5b"],
                        help="The judge (default: the settings', as make run)")  # fmt: skip
    parser.add_argument("--analysis", action=argparse.BooleanOptionalAction,
                        default=defaults.analyze_integrity,
                        help="Integrity analysis after each interview (default: as make run)",
                        )  # fmt: skip
    parser.add_argument("--capacity", type=int, default=0, help="Admit at most C at once (0: all).")
    parser.add_argument("--impatient", action="store_true", help="Answers at fixed times.")
    parser.add_argument("--gap", type=float, default=3.0,
                        help="Silence after each answer in the WAV, s (--impatient: make it "
                        "longer than the next question takes to ask, e.g. 20).")  # fmt: skip
    parser.add_argument("--browsers", type=int, default=0, help="Also K applicants in Chromium.")
    parser.add_argument("--db", default=None, help="SQLAlchemy URL (default: SQLite per level).")
    parser.add_argument("--target", type=float, default=1.5, help="p95 turn latency target, s.")
    parser.add_argument("--timeout", type=float, default=1800.0, help="Per interview, s.")
    parser.add_argument("--scoring-timeout", type=float, default=1800.0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--debug", action="store_true", help="Log the agents' turns.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(name)s %(message)s")
    # an interview that times out says where it stood; --debug: every turn of the agent
    logging.getLogger("interviewer.voice").setLevel(
        logging.DEBUG if args.debug else logging.WARNING
    )

    settings = get_settings()
    bank, texts = _bank(settings, args.bank, args.questions)
    tmp = Path(tempfile.mkdtemp(prefix="load-"))
    wavs = []
    for i, voice in enumerate(VOICES[: max(1, min(len(VOICES), max(args.levels)))]):
        wav = tmp / f"applicant-{i}.wav"
        await asyncio.to_thread(answers_wav, texts, wav, voice=voice, gap_s=args.gap)
        wavs.append(wav)
    stt = WhisperSTT(backend=settings.stt_backend, model=args.stt_model)
    await stt.warm_up()
    ctx = {
        "settings": settings,
        "bank": bank,
        "wavs": wavs,
        "stt": stt,
        "vad": load_vad(0.3),
        "tts_cache": tmp / "tts-cache",
    }
    print(
        f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; bank {bank.id} "
        f"({len(bank.questions)} questions + practice); {settings.stt_backend} "
        f"{args.stt_model}; scoring {args.scoring}; integrity analysis "
        f"{'on' if args.analysis else 'off'}; capacity {args.capacity or 'unlimited'}"
    )
    made_run = (
        args.stt_model == settings.stt_model
        and args.scoring == (settings.scoring_model if settings.score_answers else "none")
        and args.analysis == settings.analyze_integrity
    )
    print("settings: make run's defaults" if made_run else "settings: NOT make run's defaults")
    rows = []
    for n in args.levels:
        row = await run_level(n, args, ctx)
        rows.append(row)
        lost = row["answers_lost"]
        print(
            f"\nN={n}: {row['completed']}/{n} completed in {row['interviews_s']} s, "
            f"load {row['load']:.1f}\n"
            f"  turn latency p50 {_fmt(row['turn_p50_s'], ' s')}, "
            f"p95 {_fmt(row['turn_p95_s'], ' s')}"
            f" (minus the {row['threshold_s']:.1f} s threshold: p50 "
            f"{_fmt(row['response_p50_s'], ' s')}, p95 {_fmt(row['response_p95_s'], ' s')})\n"
            f"  transcript lag p50 {_fmt(row['transcript_lag_p50_s'], ' s')}, "
            f"p95 {_fmt(row['transcript_lag_p95_s'], ' s')}; VAD behind real time: "
            f"{row['vad_late_warnings']} warnings, max {row['vad_late_max_s']:.2f} s\n"
            f"  scoring backlog max {_fmt(row['scoring_backlog_max'])}, drained "
            f"{_fmt(row['scoring_drain_s'], ' s')} after the interviews, dropped "
            f"{row['scoring_dropped']}; integrity analysis done "
            f"{_fmt(row['analysis_after_s'], ' s')} after the interviews\n"
            f"  CPU machine avg {_fmt(row['cpu_machine_avg'], ' %')}, this process + children max "
            f"{_fmt(row['cpu_procs_max'], ' %')}; RSS max {_fmt(row['rss_max_mb'], ' MB')}\n"
            f"  answers stored {row['answers_expected'] - len(lost)}/{row['answers_expected']}"
            + (f"; LOST: {lost}" if lost else "")
            + (
                f"\n  queued {row['queued']}, longest wait {row['queued_wait_max_s']:.0f} s"
                if args.capacity
                else ""
            )
            + (f"\n  errors: {row['errors']}" if row["errors"] else "")
            + (f"\n  browsers: {row['browsers']}" if "browsers" in row else "")
        )
    ok = [
        r["n"]
        for r in rows
        if not r["answers_lost"] and not r["errors"] and r["turn_p95_s"] is not None
        and r["turn_p95_s"] <= args.target and r["completed"] == r["n"]
    ]  # fmt: skip
    print(f"\nknee (largest N with p95 turn latency <= {args.target} s and nothing lost): "
          f"{max(ok) if ok else 'none of the levels'}")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                         "levels": rows}, indent=2, default=str))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
