"""The interviewer's voices side by side: how well whisper understands them, how fast they are.

    .venv/bin/python bench/voices.py [--limit N] [--voices hibari espeak] [--stt-model base]
                                     [--backend faster-whisper]

Every line the product can say for every shipped bank (question_banks/*.yaml through
``InterviewFlow.prompts``: the fixed agent lines, each question and follow-up, the time
warnings), spoken by each voice exactly as applicants hear it (``voice.stack.build_tts``, an
empty cache so that every line is synthesised) and transcribed back by whisper (the product's
``transcribe_file``, base by default: the product's default model).

Per voice:
- WER over all lines (edits / reference words after whisper's own English normalizer on both
  sides, so that "four hundred thousand dollars" and "$400,000", "centre" and "center" count
  as the same words); the issue's target is <= 3% for the default voice;
- real-time factor: seconds of synthesis / seconds of audio;
- time to first audio: from asking for a line to its first frame, through the plugin's
  ``synthesize`` stream as the session plays it (hibari streams sentence by sentence; espeak-ng
  renders the whole line first), median and p95 over all lines and over the long ones
  (three sentences or more), target < 300 ms.

``--limit N`` takes N lines spread over the whole list (every k-th), for a quick run. The
machine may be shared: the load average is printed with the table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

from stt import wer_counts
from whisper.normalizers import EnglishTextNormalizer

from interviewer.banks.check import load_banks
from interviewer.config import VOICES, get_settings
from interviewer.interview import InterviewFlow
from interviewer.voice.hibari import sentences
from interviewer.voice.stack import build_tts
from interviewer.voice.stt import load_model, transcribe_file

BANKS = Path(__file__).resolve().parent.parent / "question_banks"
_NORMALIZE = EnglishTextNormalizer()


def normalize(text: str) -> list[str]:
    return _NORMALIZE(text).split()


def all_lines(limit: int | None) -> list[str]:
    lines: dict[str, None] = {}
    for bank in load_banks(BANKS):
        lines.update(dict.fromkeys(InterviewFlow(bank).prompts()))
    picked = list(lines)
    if limit and limit < len(picked):
        step = len(picked) / limit
        picked = [picked[int(i * step)] for i in range(limit)]
    return picked


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def speak(engine: Any, text: str) -> tuple[bytes, float, float]:
    """(pcm, seconds to the first frame, seconds to the last) through the plugin's stream."""
    started = time.perf_counter()
    first: float | None = None
    chunks = []
    async with engine.synthesize(text) as stream:
        async for ev in stream:
            if first is None:
                first = time.perf_counter() - started
            chunks.append(bytes(ev.frame.data))
    return b"".join(chunks), first or 0.0, time.perf_counter() - started


def write_wav(path: Path, pcm: bytes, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)


async def measure(voice: str, lines: list[str], args: argparse.Namespace, tmp: Path) -> dict:
    settings = get_settings().model_copy(update={"data_dir": tmp / voice})
    engine = build_tts(settings, voice=voice)
    if hasattr(engine, "warm_up"):
        await engine.warm_up()  # the model loads once per process, before the first line
    await speak(engine, "Warm up.")
    edits = words = 0
    synth = audio = 0.0
    firsts: list[float] = []
    long_firsts: list[float] = []
    worst: list[tuple[float, str, str]] = []
    for i, text in enumerate(lines):
        pcm, first, total = await speak(engine, text)
        seconds = len(pcm) / 2 / engine.sample_rate
        synth, audio = synth + total, audio + seconds
        firsts.append(first)
        if len(sentences(text)) >= 3:
            long_firsts.append(first)
        wav = tmp / f"{voice}-{i}.wav"
        write_wav(wav, pcm, engine.sample_rate)
        heard = await asyncio.to_thread(
            transcribe_file, wav, backend=args.backend, model=args.stt_model
        )
        ref, hyp = normalize(text), normalize(heard.text)
        e = wer_counts(ref, hyp)
        edits, words = edits + e, words + len(ref)
        if e:
            worst.append((e / max(1, len(ref)), text, heard.text))
        wav.unlink()
    return {
        "voice": voice,
        "wer": edits / max(1, words),
        "rtf": synth / max(audio, 1e-9),
        "first_med": statistics.median(firsts),
        "first_p95": pct(firsts, 0.95),
        "long_n": len(long_firsts),
        "long_med": statistics.median(long_firsts) if long_firsts else float("nan"),
        "long_max": max(long_firsts) if long_firsts else float("nan"),
        "audio_s": audio,
        "worst": sorted(worst, reverse=True)[:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="lines to speak (default all)")
    parser.add_argument("--voices", nargs="+", default=list(VOICES), choices=VOICES)
    parser.add_argument("--stt-model", default="base", choices=("tiny.en", "base"))
    parser.add_argument(
        "--backend", default="faster-whisper", choices=("whisper", "faster-whisper")
    )
    args = parser.parse_args()

    lines = all_lines(args.limit)
    load_model(args.backend, args.stt_model)  # loaded before timing
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-voices-") as tmp:
        for voice in args.voices:
            results.append(asyncio.run(measure(voice, lines, args, Path(tmp))))
    load = os.getloadavg()
    print(
        f"{len(lines)} lines ({sum(len(normalize(t)) for t in lines)} words) from {BANKS.name}/, "
        f"transcribed by {args.backend} {args.stt_model}; load average "
        f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"{'voice':8} {'WER':>6} {'RTF':>6} {'first audio med':>16} {'p95':>7} "
        f"{'long lines (n) med':>19} {'max':>7} {'audio':>8}"
    )
    for r in results:
        print(
            f"{r['voice']:8} {r['wer']:6.1%} {r['rtf']:6.3f} {r['first_med'] * 1000:13.0f} ms "
            f"{r['first_p95'] * 1000:4.0f} ms {'(' + str(r['long_n']) + ')':>6} "
            f"{r['long_med'] * 1000:9.0f} ms {r['long_max'] * 1000:4.0f} ms {r['audio_s']:7.0f} s"
        )
    for r in results:
        for rate, text, heard in r["worst"]:
            print(f"  {r['voice']}: {rate:.0%} said {text!r}\n{'':12}heard {heard!r}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
