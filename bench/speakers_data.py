"""Real-speech test material for the speaker detectors: Debian's asterisk prompt recordings.

Each language pack is one voice artist, so a language is a speaker. en (en_US_f_Allison) and es
(es_MX_f_Allison) are the same artist: they are never used as two different people. An "answer"
is a run of one speaker's prompts joined by pauses of 0.3-1.2 s; a second speaker "joins" by
speaking a run of their prompts of at least ``join_s`` seconds in its middle.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from interviewer.proctoring.voices import SAMPLE_RATE, read_wav

SOUNDS = Path("/usr/share/asterisk/sounds")
# recording -> its folder (Debian packages asterisk-core-sounds-LANG-wav and
# asterisk-prompt-it-menardi-wav); each folder is one voice artist
FOLDERS = {
    "en": "en_US_f_Allison",
    "es": "es_MX_f_Allison",
    "fr": "fr_CA_f_June",
    "it": "it_IT_m_Carlo",
    "it-f": "it_IT_f_Menardi",
    "ru": "ru_RU_f_IvrvoiceRU",
}
LANGUAGES = tuple(FOLDERS)
SAME_PERSON = {frozenset({"en", "es"})}  # Allison recorded both
# prompts that are not speech (the en pack's reference texts put them in brackets): tones and
# the monkeys of tt-monkeys, which the speaker encoder rightly finds unlike the artist's voice
NOT_SPEECH = {"beep", "beeperr", "ascending-2tone", "descending-2tone", "tt-monkeys"}


def different(a: str, b: str) -> bool:
    return a != b and frozenset({a, b}) not in SAME_PERSON


def prompts(language: str, half: int | None = None) -> list[Path]:
    """The recording's spoken prompts of at least 1 s; ``half`` 0 or 1 keeps every other file,
    so thresholds tuned on one half are reported on the other."""
    files = sorted((SOUNDS / FOLDERS[language]).glob("*.wav"))
    files = [
        f for f in files if f.stem not in NOT_SPEECH and f.stat().st_size > 8000 * 2 * 1.0
    ]  # 8 kHz 16-bit, >= 1 s
    return files if half is None else files[half::2]


@dataclass
class Clip:
    signal: np.ndarray
    joined: tuple[float, float] | None = None  # where the second speaker speaks (seconds)

    @property
    def seconds(self) -> float:
        return len(self.signal) / SAMPLE_RATE


def run_of(files: list[Path], seconds: float, rng: random.Random) -> np.ndarray:
    """Prompts drawn at random, with pauses, until ``seconds`` of audio."""
    parts: list[np.ndarray] = []
    total = 0
    while total < seconds * SAMPLE_RATE:
        speech = read_wav(rng.choice(files))
        pause = np.zeros(int(rng.uniform(0.3, 1.2) * SAMPLE_RATE), dtype=np.float32)
        parts += [speech, pause]
        total += len(speech) + len(pause)
    return np.concatenate(parts[:-1])


def answer(files: list[Path], seconds: float, rng: random.Random) -> Clip:
    return Clip(run_of(files, seconds, rng))


def joined(
    files: list[Path], other: list[Path], seconds: float, join_s: float, rng: random.Random
) -> Clip:
    """An answer whose middle has ``join_s``+ seconds of another speaker (after a pause)."""
    head = run_of(files, seconds / 2, rng)
    guest = run_of(other, join_s, rng)
    tail = run_of(files, seconds / 2, rng)
    gap = np.zeros(int(0.5 * SAMPLE_RATE), dtype=np.float32)
    start = (len(head) + len(gap)) / SAMPLE_RATE
    signal = np.concatenate([head, gap, guest, gap, tail])
    return Clip(signal, (start, start + len(guest) / SAMPLE_RATE))
