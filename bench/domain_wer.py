"""Does whisper hear a field's words better when told the question and its key terms?

    .venv/bin/python bench/domain_wer.py [--backend whisper] [--voices hibari espeak]
        [--questions 2] [--sentences 3] [--banks dermatology law ...]

Every shipped bank's reference answers read aloud (the neural voice hibari and espeak-ng through
the product's own espeak path), sentence by sentence as an applicant's answer is cut into
segments, each transcribed by tiny.en without and with the context (``voice/context.py``): word
error rate over everything, and over the key terms alone (a term counts as missed unless its
words come back in order), side by side. Then the leak check: real human speech about something
else (Debian's asterisk recordings), transcribed with each question's context, must gain none of
that question's key terms over its plain transcript. Figures per voice and overall.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from stt import normalize, wer_counts  # bench/stt.py: the same WER as the STT benchmark

from interviewer.banks.check import load_bank
from interviewer.banks.model import bank_files
from interviewer.config import get_settings
from interviewer.voice.context import context_text, key_terms
from interviewer.voice.stt import SAMPLE_RATE, decode_file, transcribe_array
from interviewer.voice.tts import render_with_espeak_binary, resample

ROOT = Path(__file__).resolve().parents[1]
SOUNDS = Path("/usr/share/asterisk/sounds/en")
OFF_TOPIC = [
    "all-circuits-busy-now.wav",
    "agent-newlocation.wav",
    "conf-adminmenu.wav",
    "vm-options.wav",
    "queue-thankyou.wav",
]


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 3]


class Voices:
    """Text to mono 16 kHz float32 speech in the voices asked for."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self._hibari = None
        if "hibari" in names:
            from hibari import Hibari  # lazy: only when the neural voice is asked for

            self._hibari = Hibari()
        self._tmp = Path(tempfile.mkdtemp())

    def say(self, voice: str, text: str) -> np.ndarray:
        if voice == "hibari":
            from hibari import SAMPLE_RATE as RATE

            audio = np.clip(np.asarray(self._hibari(text), dtype=np.float32), -1, 1)  # type: ignore[misc]
            pcm = resample((audio * 32767).astype(np.int16), RATE, SAMPLE_RATE)
        else:
            settings = get_settings()
            out = self._tmp / "espeak.wav"
            render_with_espeak_binary(text, settings.tts_voice, settings.tts_rate, out)
            return decode_file(out)
        return pcm.astype(np.float32) / 32768.0


def contains(words: list[str], term: list[str]) -> bool:
    n = len(term)
    return any(words[i : i + n] == term for i in range(len(words) - n + 1))


class Tally:
    def __init__(self) -> None:
        self.ref_words = 0
        self.errors = {"plain": 0, "context": 0}
        self.terms = 0
        self.missed = {"plain": 0, "context": 0}

    def add(self, ref: str, hyps: dict[str, str], terms: list[list[str]]) -> None:
        ref_words = normalize(ref)
        self.ref_words += len(ref_words)
        said = [t for t in terms if contains(ref_words, t)]
        self.terms += len(said)
        for mode, hyp in hyps.items():
            heard = normalize(hyp)
            self.errors[mode] += wer_counts(ref_words, heard)
            self.missed[mode] += sum(not contains(heard, t) for t in said)

    def line(self, label: str) -> str:
        wer = {m: self.errors[m] / max(1, self.ref_words) for m in self.errors}
        kw = {m: self.missed[m] / max(1, self.terms) for m in self.missed}
        return (
            f"{label:<28} WER {wer['plain']:6.1%} -> {wer['context']:6.1%}   key terms missed "
            f"{kw['plain']:6.1%} -> {kw['context']:6.1%}  ({self.ref_words} words, "
            f"{self.terms} key terms)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="whisper", choices=["whisper", "faster-whisper"])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--voices", nargs="+", default=["hibari", "espeak"])
    parser.add_argument("--questions", type=int, default=0, help="per bank; 0: all")
    parser.add_argument("--sentences", type=int, default=0, help="per answer; 0: all")
    parser.add_argument("--banks", nargs="*", default=[])
    args = parser.parse_args()

    voices = Voices(args.voices)
    banks = [load_bank(p) for p in bank_files(ROOT / "question_banks")]
    banks = [b for b in banks if not args.banks or b.id in args.banks]
    totals = {v: Tally() for v in args.voices}
    leaks: list[tuple[str, str, str, set[str]]] = []
    checks = 0
    clips = {n: decode_file(SOUNDS / n) for n in OFF_TOPIC if (SOUNDS / n).exists()}
    plain_clips = {
        n: set(normalize(transcribe_array(a, backend=args.backend, model=args.model).text))
        for n, a in clips.items()
    }
    start = time.monotonic()
    for bank in banks:
        per_bank = {v: Tally() for v in args.voices}
        for q in bank.questions[: args.questions or None]:
            terms = key_terms(q)
            prompt = context_text(q.prompt, terms)
            term_words = [normalize(t) for t in terms]
            for text in sentences(q.reference_answer)[: args.sentences or None]:
                for voice in args.voices:
                    audio = voices.say(voice, text)
                    hyps = {
                        mode: transcribe_array(
                            audio, backend=args.backend, model=args.model, prompt=p
                        ).text
                        for mode, p in (("plain", None), ("context", prompt))
                    }
                    for tally in (per_bank[voice], totals[voice]):
                        tally.add(text, hyps, term_words)
            glossary = {w for t in term_words for w in t}
            for name, audio in clips.items():
                heard = transcribe_array(
                    audio, backend=args.backend, model=args.model, prompt=prompt
                )
                gained = (set(normalize(heard.text)) - plain_clips[name]) & glossary
                checks += 1
                if gained:
                    leaks.append((bank.id, q.id, name, gained))
        for voice in args.voices:
            print(per_bank[voice].line(f"{bank.id} / {voice}"), flush=True)
    print(f"--- {args.backend} {args.model}, {time.monotonic() - start:.0f} s")
    for voice in args.voices:
        print(totals[voice].line(f"all banks / {voice}"))
    print(
        f"leak check: {len(leaks)} of {checks} off-topic transcripts gained a key term "
        f"({len(clips)} asterisk recordings x each question's context)"
    )
    for leak in leaks:
        print("  LEAK", *leak)
    sys.exit(1 if leaks else 0)


if __name__ == "__main__":
    main()
