"""Turn latency, transcript lag and peak memory of a whole interview, in real time.

    .venv/bin/python bench/turn_latency.py [--bank dermatology] [--stt-model base]

Part 1 runs one bank's interview with its strong demo applicant (espeak-ng) at real-time pace
and measures, for every answer, the end of the applicant's speech -> the first audio frame of
the agent's next line. That span contains the silence threshold itself (the time the agent must
wait to know the answer is over), so the figures are printed with and without it.

Part 2 measures transcript lag (end of speech -> the last word transcribed) for a 10 s and a
60 s answer: segments are transcribed while the applicant speaks, so the lag should depend on
the last segment, not on the length of the answer.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from interviewer.banks.check import load_banks
from interviewer.banks.model import Bank
from interviewer.config import get_settings
from interviewer.store import repo
from interviewer.store.db import create_db_engine, migrate, session_scope
from interviewer.store.recordings import Recordings
from interviewer.voice.io import WavAudioInput, WavAudioOutput, answers_wav
from interviewer.voice.session import InterviewReport, SessionOptions, run_interview
from interviewer.voice.stack import VoiceModels
from interviewer.voice.stt import WhisperSTT
from interviewer.voice.tts import Pyttsx3TTS
from interviewer.voice.vad import load_vad

SENTENCE = (
    "When I review a lesion I take a careful history, I examine the whole skin with good light "
    "and a dermatoscope, and I document what I see with photographs and measurements. "
)


def _interview(engine: Any, bank: Bank, slug: str) -> int:
    with session_scope(engine) as s:
        version = repo.publish_bank(s, bank)
        opening = repo.create_opening(s, slug=slug, title=slug, bank_version=version)
        applicant = repo.create_applicant(s, name="Bench", email="bench@example.invalid")
        return repo.create_interview(s, opening=opening, applicant=applicant).id


async def _run(
    engine: Any, interview_id: int, wav: Path, tmp: Path, models: dict[str, Any]
) -> InterviewReport:
    out = WavAudioOutput(None)
    try:
        return await run_interview(
            engine,
            interview_id,
            audio_input=WavAudioInput(wav),
            audio_output=out,
            recordings=Recordings(tmp / "rec"),
            models=VoiceModels(stt=models["stt"], vad=models["vad"], tts=models["tts"]),
            options=SessionOptions(max_follow_ups=0, timeout_s=1800),
        )
    finally:
        await out.aclose()


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def _long_bank(base: Bank) -> Bank:
    data = base.model_dump(mode="json")
    data["id"] = "bench-lag"
    data["questions"] = [dict(data["questions"][0], id="ten", time_limit_s=120)]
    data["questions"].append(dict(data["questions"][0], id="sixty", time_limit_s=180))
    for q in data["questions"]:
        q["follow_ups"] = []
    return Bank.model_validate(data)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bank", default="dermatology")
    parser.add_argument("--stt-model", default=get_settings().stt_model)
    parser.add_argument("--skip-interview", action="store_true")
    parser.add_argument("--questions", type=int, default=0, help="Only the first N (0: all).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    settings = get_settings()
    bank = next(b for b in load_banks(settings.banks_dir) if b.id == args.bank)
    if args.questions:
        bank = Bank.model_validate(
            {
                **bank.model_dump(mode="json"),
                "questions": [q.model_dump(mode="json") for q in bank.questions[: args.questions]],
            }
        )
    demo = yaml.safe_load((settings.banks_dir / "demo_answers" / f"{bank.id}.yaml").read_text())
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    engine = create_db_engine(f"sqlite:///{tmp / 'db.sqlite'}")
    migrate(engine)
    models = {
        "stt": WhisperSTT(model=args.stt_model),
        "tts": Pyttsx3TTS(),
        "vad": load_vad(0.3),
    }
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} at start")
    print(f"stt: whisper {args.stt_model} ({models['stt'].backend})")

    if not args.skip_interview:
        texts = [demo["practice"]["strong"]] + [
            demo["answers"][q.id]["strong"] for q in bank.questions
        ]
        wav = tmp / "interview.wav"
        answers_wav(texts, wav, voice="en-gb", gap_s=4.0)
        report = await _run(engine, _interview(engine, bank, "bench"), wav, tmp, models)
        lat = [t.turn_latency_s for t in report.turns if t.turn_latency_s is not None]
        lag = [t.transcript_lag_s for t in report.turns if t.transcript_lag_s is not None]
        thr = report.silence_threshold_s
        print(
            f"\ninterview: bank {bank.id}, {len(report.answers)} answers, "
            f"completed={report.completed}, {report.wall_s:.0f} s wall"
        )
        if lat:
            print(f"turn latency (end of speech -> first audio of next line), n={len(lat)}:")
            print(
                f"  median {statistics.median(lat):.2f} s, p95 {_pct(lat, 0.95):.2f} s "
                f"(includes the {thr:.1f} s silence threshold)"
            )
            net = [x - thr for x in lat]
            print(
                f"  beyond the threshold: median {statistics.median(net):.2f} s, "
                f"p95 {_pct(net, 0.95):.2f} s"
            )
        if lag:
            print(f"transcript lag: median {statistics.median(lag):.2f} s, max {max(lag):.2f} s")
        rest = [
            t.turn_latency_s - t.transcript_lag_s
            for t in report.turns
            if t.turn_latency_s is not None and t.transcript_lag_s is not None
        ]
        if rest:
            # what the pipeline adds once the transcript is in: turn commit, core, DB, TTS
            print(
                f"latency after the transcript is in: median {statistics.median(rest):.3f} s, "
                f"max {max(rest):.3f} s"
            )

    long_bank = _long_bank(bank)
    ten = " ".join([SENTENCE] * 1)
    sixty = " ".join([SENTENCE] * 6)
    wav = tmp / "long.wav"
    spans = answers_wav([demo["practice"]["weak"], ten, sixty], wav, voice="en-gb", gap_s=4.0)
    report = await _run(engine, _interview(engine, long_bank, "bench-lag"), wav, tmp, models)
    print("\ntranscript lag by answer length:")
    for (start, end), turn in zip(spans, report.turns, strict=False):
        lag = turn.transcript_lag_s
        print(
            f"  {turn.question_id:>8}: {end - start:5.1f} s of speech -> lag "
            f"{'n/a' if lag is None else f'{lag:.2f} s'}"
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {rss:.0f} MB; load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
