"""Keeping whisper's prompt from putting words in the applicant's mouth.

With a prompt (``voice/context.py``), whisper may write out the prompt instead of what it heard
on near-silence, go round in a loop, or end a clip on words of its own ("Thank you."). These
checks are what ``voice/stt.py``'s ``transcribe_array`` applies to a prompted decode; they only
look at the audio's loudness and the decoded text, so they cost nothing next to a decode.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

_RATE = 16_000  # whisper's input rate (stt.SAMPLE_RATE; stt imports this module)
RawWord = tuple[str, float, float, float]  # text, start s, end s, probability

PROMPT_MIN_VOICED_S = 0.3
"""Audio with less than this much sound above ``VOICED_RMS`` gets no prompt: on near-silence
whisper tends to write out its prompt instead of what it heard."""
VOICED_RMS = 0.01  # -40 dBFS over a 30 ms frame
PROMPT_ECHO_WORDS = 4
"""A transcript holding this many consecutive words of its prompt may be an echo of it."""

_WORDS = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_FRAME_S = 0.03


def voiced(audio: np.ndarray) -> np.ndarray:
    """One bool per 30 ms frame: louder than ``VOICED_RMS`` (a cheap speech-or-not measure)."""
    frame = int(_FRAME_S * _RATE)
    n = len(audio) // frame
    frames = audio[: n * frame].reshape(n, frame)
    return np.sqrt(np.mean(frames * frames, axis=1)) > VOICED_RMS


def voiced_seconds(audio: np.ndarray) -> float:
    """Seconds of the audio louder than ``VOICED_RMS``."""
    return float(np.count_nonzero(voiced(audio)) * _FRAME_S)


UNSURE = 0.15
"""Whisper's word probability below which a word mostly over silence is taken as its own."""


def heard(raw: list[RawWord], loud: np.ndarray, prompt: str) -> list[RawWord]:
    """The words with sound under them (``loud``: :func:`voiced` of the audio).

    With a prompt, whisper likes to end on words of its own ("Thank you.") where the audio has
    gone quiet: a word that starts after the last sound, or
    one mostly over silence, unsure (probability under ``UNSURE``) and not from the prompt, was
    not said. (A field word the applicant trails off on, "naevi", is just as unsure at the end
    of a clip: the prompt's words are kept, their echoes are what ``echoes_prompt`` catches.)"""
    if not loud.any():
        return []
    last_s = (int(np.nonzero(loud)[0][-1]) + 1) * _FRAME_S
    prompted = set(_norm_words(prompt))
    kept = []
    for w in raw:
        lo, hi = int(w[1] / _FRAME_S), max(int(w[1] / _FRAME_S) + 1, int(w[2] / _FRAME_S))
        share = float(np.mean(loud[lo:hi])) if lo < len(loud) else 0.0
        own = not set(_norm_words(w[0])) <= prompted
        if w[1] > last_s + 0.1 or (share < 0.5 and w[3] < UNSURE and own):
            continue
        kept.append(w)
    return kept


def _norm_words(text: str) -> list[str]:
    return _WORDS.findall(text.lower().replace("\u2019", "'"))


def echoes_prompt(text: str, prompt: str, run: int = PROMPT_ECHO_WORDS) -> bool:
    """``text`` repeats ``run`` consecutive words of ``prompt`` (case and punctuation aside)."""
    words, said = _norm_words(prompt), _norm_words(text)
    grams = {tuple(words[i : i + run]) for i in range(len(words) - run + 1)}
    return any(tuple(said[i : i + run]) in grams for i in range(len(said) - run + 1))


LOOP_RATIO = 2.4
"""Whisper's own bar (``compression_ratio_threshold``): text that gzip shrinks more than this is
a decoding loop ("and the other, and the other, ..."), not speech."""


def looping(text: str) -> bool:
    """Whisper went round in a loop (a prompt can start one on audio it cannot read)."""
    data = text.encode()
    return len(data) > 40 and len(data) / len(zlib.compress(data)) > LOOP_RATIO


def suspect(text: str, prompt: str) -> bool:
    """A prompted transcript to check by a decode without the prompt."""
    return echoes_prompt(text, prompt) or looping(text)
