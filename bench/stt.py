"""Speech-to-text speed (real-time factor) and accuracy (WER) per backend and model.

    .venv/bin/python bench/stt.py [--n 40] [--models tiny.en base]
                                  [--backends whisper faster-whisper]

Audio: a fixed sample of ``--n`` of Debian's asterisk recordings (real human speech, 8 kHz
telephone quality) with their reference texts from core-sounds-en.txt.gz (bracketed lines are
tones and are skipped). The sample is every k-th name in sorted order, so it is the same on
every machine.

Two paths per (backend, model):
- plugin: the WAV read as 20 ms int16 frames at 8 kHz, through ``WhisperSTT.recognize`` (the
  livekit soxr resampler, the shared worker and its queue), as the interview session runs it;
- direct: ``transcribe_file`` (ffmpeg decodes and resamples, then the same decode).

RTF = wall-clock seconds of transcription / seconds of audio (lower is faster; the model is
loaded before timing). The direct path's time includes the ffmpeg decode. WER uses a simple
normalizer (lower case, no punctuation, digits spelled out). The machine is shared: the load
average is printed with the table.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import re
import statistics
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from livekit import rtc

from interviewer.voice.stt import WhisperSTT, load_model, transcribe_file

SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
REFERENCES = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")

_ONES = [
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    *("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen"),
    *("eighteen", "nineteen"),
]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _spell(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = "" if n % 100 == 0 else " " + _spell(n % 100)
        return _ONES[n // 100] + " hundred" + rest
    return " ".join(_ONES[int(d)] for d in str(n))


def normalize(text: str) -> list[str]:
    text = text.lower().replace("-", " ").replace("#", " pound ")
    text = re.sub(r"\d+", lambda m: " " + _spell(int(m.group())) + " ", text)
    text = re.sub(r"[^a-z' ]+", " ", text).replace("'", "")
    return text.split()


def wer_counts(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def references() -> dict[str, str]:
    refs = {}
    with gzip.open(REFERENCES, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            name, sep, text = line.partition(":")
            text = text.strip()
            if not sep or line.startswith(";") or "/" in name or not text or text.startswith("["):
                continue
            if (SOUNDS / f"{name.strip()}.wav").exists():
                refs[name.strip()] = text
    return refs


def sample(n: int) -> list[tuple[Path, str]]:
    refs = references()
    names = sorted(refs)
    picked = [names[i * len(names) // n] for i in range(min(n, len(names)))]
    return [(SOUNDS / f"{name}.wav", refs[name]) for name in picked]


def wav_frames(path: Path, frame_ms: int = 20) -> tuple[list[rtc.AudioFrame], float]:
    with wave.open(str(path), "rb") as w:
        rate, channels = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    step = rate * frame_ms // 1000 * channels
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    frames = [rtc.AudioFrame(c.tobytes(), rate, channels, len(c) // channels) for c in chunks]
    return frames, len(data) / channels / rate


@dataclass
class Row:
    backend: str
    model: str
    path: str
    rtfs: list[float]
    wers: list[float]
    errors: int
    ref_words: int
    seconds: float
    audio: float


def run_direct(backend: str, model: str, clips: list[tuple[Path, str]]) -> Row:
    row = Row(backend, model, "direct", [], [], 0, 0, 0.0, 0.0)
    for path, ref in clips:
        start = time.perf_counter()
        t = transcribe_file(path, backend=backend, model=model)
        took = time.perf_counter() - start
        _add(row, took, t.duration, ref, t.text)
    return row


async def run_plugin(backend: str, model: str, clips: list[tuple[Path, str]]) -> Row:
    row = Row(backend, model, "plugin", [], [], 0, 0, 0.0, 0.0)
    stt = WhisperSTT(backend=backend, model=model)
    for path, ref in clips:
        frames, duration = wav_frames(path)
        start = time.perf_counter()
        event = await stt.recognize(frames)
        took = time.perf_counter() - start
        _add(row, took, duration, ref, event.alternatives[0].text)
    return row


def _add(row: Row, took: float, duration: float, ref: str, hyp: str) -> None:
    r, h = normalize(ref), normalize(hyp)
    errors = wer_counts(r, h)
    row.rtfs.append(took / duration)
    row.wers.append(errors / max(1, len(r)))
    row.errors += errors
    row.ref_words += len(r)
    row.seconds += took
    row.audio += duration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=40, help="clips in the fixed sample")
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--backends", nargs="+", default=["whisper", "faster-whisper"])
    args = parser.parse_args()

    clips = sample(args.n)
    durations = [wav_frames(p)[1] for p, _ in clips]
    print(
        f"{len(clips)} asterisk clips, {sum(durations):.0f} s of speech "
        f"(median {statistics.median(durations):.1f} s); "
        f"{os.cpu_count()} CPUs, load average at start {os.getloadavg()[0]:.1f}"
    )
    rows: list[Row] = []
    for model in args.models:
        for backend in args.backends:
            load_model(backend, model)  # not timed
            rows.append(asyncio.run(run_plugin(backend, model, clips)))
            rows.append(run_direct(backend, model, clips))
            for row in rows[-2:]:
                print(
                    f"  done {row.backend} {row.model} {row.path}: {row.seconds:.0f} s "
                    f"(load average {os.getloadavg()[0]:.1f})",
                    flush=True,
                )

    header = (
        f"{'backend':<15}{'model':<9}{'path':<8}{'median RTF':>11}{'total RTF':>10}"
        f"{'median WER':>11}{'WER':>7}{'median s/clip':>14}"
    )
    print()
    print(header)
    print("-" * len(header))
    for row in rows:
        clip_s = [rtf * d for rtf, d in zip(row.rtfs, durations, strict=True)]
        print(
            f"{row.backend:<15}{row.model:<9}{row.path:<8}"
            f"{statistics.median(row.rtfs):>11.3f}{row.seconds / row.audio:>10.3f}"
            f"{statistics.median(row.wers):>11.3f}{row.errors / row.ref_words:>7.3f}"
            f"{statistics.median(clip_s):>14.2f}"
        )
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
