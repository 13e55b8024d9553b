"""Audio features shared by the voice detectors, the background voice and the reading pattern.

Both detectors compare an answer with the applicant's own practice answer, recorded minutes
earlier on the same microphone in the same room, so the comparison is with this person, not with
a population norm: a fast talker is not "reading". Who is speaking (a second voice, a stand-in)
is proctoring/speakers.py, on a trained speaker encoder; its speech mask comes from here.

* Background voice: voiced sound (periodic, pitch in the human range) in the gaps between the
  applicant's words (whisper's word timings), well above the room's noise floor and well below
  the applicant's level: somebody talking quietly nearby.
* Reading pattern: a long wait before answering followed by unusually even, fluent speech
  (faster, with steadier pauses than the practice answer), the way a prepared text sounds.

Everything here is plain, blocking numpy/scipy: callers run it in an executor or a worker.
"""

from __future__ import annotations

import itertools
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np
from scipy.fft import dct
from scipy.signal import resample_poly

SAMPLE_RATE = 16_000
FRAME_S = 0.025
HOP_S = 0.010
N_MELS = 26
N_MFCC = 13
PITCH_FRAME_S = 0.040
MIN_F0, MAX_F0 = 60.0, 400.0
VOICED_CORRELATION = 0.45
SILENCE_DB = -40.0  # below the answer's loud level: not speech


# --- audio ---------------------------------------------------------------------------------------


def read_wav(path: Path | str) -> np.ndarray:
    """Mono float32 at 16 kHz: the same rate for every answer, whatever the browser sent."""
    with wave.open(str(path), "rb") as w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        raw = w.readframes(w.getnframes())
    if width != 2:
        raise ValueError(f"{path}: expected 16-bit PCM, got {8 * width}-bit")
    data = np.frombuffer(raw, dtype=np.int16).astype(np.float32) / 32768.0
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    return to_16k(data, rate)


def to_16k(data: np.ndarray, rate: int) -> np.ndarray:
    data = np.asarray(data, dtype=np.float32).reshape(-1)
    if rate == SAMPLE_RATE or not len(data):
        return data
    g = gcd(rate, SAMPLE_RATE)
    return resample_poly(data, SAMPLE_RATE // g, rate // g).astype(np.float32)


def _frames(signal: np.ndarray, size: int, hop: int) -> np.ndarray:
    if len(signal) < size:
        signal = np.pad(signal, (0, size - len(signal)))
    count = 1 + (len(signal) - size) // hop
    return np.lib.stride_tricks.sliding_window_view(signal, size)[::hop][:count]


def _mel_filterbank(n_fft: int, rate: int, n_mels: int) -> np.ndarray:
    def hz_to_mel(hz: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    mel_points = np.linspace(hz_to_mel(np.array(20.0)), hz_to_mel(np.array(rate / 2)), n_mels + 2)
    hz_points = 700.0 * (10 ** (mel_points / 2595.0) - 1.0)
    bins = np.floor((n_fft + 1) * hz_points / rate).astype(int)
    bank = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(1, n_mels + 1):
        left, center, right = bins[m - 1], bins[m], bins[m + 1]
        if center > left:
            bank[m - 1, left:center] = (np.arange(left, center) - left) / (center - left)
        if right > center:
            bank[m - 1, center:right] = (right - np.arange(center, right)) / (right - center)
    return bank


@dataclass
class FrameFeatures:
    """Per 10 ms frame: MFCCs, level in dB, and pitch (NaN where unvoiced)."""

    mfcc: np.ndarray  # (n, N_MFCC)
    level_db: np.ndarray  # (n,)
    f0: np.ndarray  # (n,)
    voicing: np.ndarray  # (n,) peak normalised autocorrelation, 0..1

    @property
    def count(self) -> int:
        return len(self.level_db)


def frame_features(signal: np.ndarray) -> FrameFeatures:
    hop = int(HOP_S * SAMPLE_RATE)
    size = int(FRAME_S * SAMPLE_RATE)
    n_fft = 512
    emphasized = np.append(signal[:1], signal[1:] - 0.97 * signal[:-1])
    frames = _frames(emphasized, size, hop) * np.hamming(size)
    power = np.abs(np.fft.rfft(frames, n_fft)) ** 2 / n_fft
    mel = np.log(power @ _mel_filterbank(n_fft, SAMPLE_RATE, N_MELS).T + 1e-10)
    mfcc = dct(mel, type=2, axis=1, norm="ortho")[:, :N_MFCC]
    raw = _frames(signal, size, hop)
    level_db = 10 * np.log10(np.mean(raw**2, axis=1) + 1e-12)
    f0, voicing = _pitch(signal, len(level_db))
    return FrameFeatures(mfcc=mfcc, level_db=level_db, f0=f0, voicing=voicing)


def _pitch(signal: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Autocorrelation pitch per 10 ms hop on 40 ms frames, vectorised through the FFT."""
    hop = int(HOP_S * SAMPLE_RATE)
    size = int(PITCH_FRAME_S * SAMPLE_RATE)
    frames = _frames(np.pad(signal, (0, size)), size, hop)[:count]
    frames = frames - frames.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(frames * np.hanning(size), 2 * size)
    corr = np.fft.irfft(np.abs(spectrum) ** 2, 2 * size)[:, :size]
    energy = corr[:, :1]
    corr = np.where(energy > 1e-9, corr / np.maximum(energy, 1e-9), 0.0)
    low, high = int(SAMPLE_RATE / MAX_F0), int(SAMPLE_RATE / MIN_F0)
    lags = np.argmax(corr[:, low:high], axis=1) + low
    peak = corr[np.arange(len(corr)), lags]
    f0 = np.where(peak >= VOICED_CORRELATION, SAMPLE_RATE / lags, np.nan)
    return f0, np.clip(peak, 0.0, 1.0)


def speech_mask(features: FrameFeatures, floor_db: float = SILENCE_DB) -> np.ndarray:
    """Frames within ``floor_db`` of the answer's loud level (its 95th percentile)."""
    if not features.count:
        return np.zeros(0, dtype=bool)
    loud = np.percentile(features.level_db, 95)
    return (features.level_db > loud + floor_db) & (features.level_db > -70.0)


# --- speech runs ---------------------------------------------------------------------------------


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[first, last) index ranges of the True runs of ``flags``."""
    found, start = [], None
    for i, flag in enumerate([*list(flags), False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            found.append((start, i))
            start = None
    return found


# --- background voice -----------------------------------------------------------------------------


@dataclass
class BackgroundVoice:
    seconds: float  # voiced sound found in the applicant's pauses
    level_below_db: float  # how much quieter than the applicant
    spans: list[tuple[float, float]]


def _gaps_from_words(
    words: Sequence[dict[str, Any]], total_s: float, min_gap_s: float, margin_s: float
) -> list[tuple[float, float]]:
    edges = [(0.0, 0.0)]
    edges += [(float(w["start"]), float(w["end"])) for w in words if "start" in w and "end" in w]
    edges.append((total_s, total_s))
    gaps = []
    for (_, end), (start, _) in itertools.pairwise(edges):
        if start - end >= min_gap_s + 2 * margin_s:
            gaps.append((end + margin_s, start - margin_s))
    return gaps


def background_voice(
    signal: np.ndarray,
    words: Sequence[dict[str, Any]] | None,
    *,
    min_gap_s: float = 0.4,
    margin_s: float = 0.15,
    below_db: float = 10.0,
    above_floor_db: float = 12.0,
) -> BackgroundVoice:
    """Voiced, speech-level sound while the applicant is silent, quieter than the applicant.

    Frames count when they are periodic (pitch 60-400 Hz), at least ``above_floor_db`` above
    the room's noise floor and at least ``below_db`` under the applicant's loud level, and lie
    in a gap between the applicant's words. Without word timings nothing is reported: the
    energy envelope alone cannot tell a quiet second voice from the applicant's own soft
    syllables (tried: ~1 s of false "background" per clean answer).
    """
    if not words:
        return BackgroundVoice(0.0, 0.0, [])
    features = frame_features(signal)
    if not features.count:
        return BackgroundVoice(0.0, 0.0, [])
    total_s = features.count * HOP_S
    loud = float(np.percentile(features.level_db, 95))
    floor = float(np.percentile(features.level_db, 5))
    times = np.arange(features.count) * HOP_S
    applicant_level = features.level_db >= loud - below_db
    in_gap = np.zeros(features.count, dtype=bool)
    for start, end in _gaps_from_words(words, total_s, min_gap_s, margin_s):
        span = (times >= start) & (times < end)
        # whisper sometimes skips words: a "gap" in which the applicant is audibly speaking
        # is a timing error, not a pause, and its quieter syllables are not someone else
        if applicant_level[span].mean() > 0.05:
            continue
        in_gap |= span
    candidate = (
        in_gap
        & (features.level_db < loud - below_db)
        & (features.level_db > max(floor + above_floor_db, -70.0))
        & ~np.isnan(features.f0)
    )
    # speech is voiced in bursts (syllables) split by short unvoiced consonants: join bursts
    # less than 100 ms apart, then drop what is still shorter than 150 ms (clicks, echoes)
    joined = candidate.copy()
    for first, last in runs(~candidate):
        if first > 0 and last < len(candidate) and (last - first) * HOP_S <= 0.1:
            joined[first:last] = in_gap[first:last]
    spans, levels = [], []
    for first, last in runs(joined):
        if (last - first) * HOP_S >= 0.15:
            spans.append((round(first * HOP_S, 2), round(last * HOP_S, 2)))
            levels.append(features.level_db[first:last])
    seconds = sum(end - start for start, end in spans)
    level = float(loud - np.median(np.concatenate(levels))) if levels else 0.0
    return BackgroundVoice(seconds=round(seconds, 2), level_below_db=round(level, 1), spans=spans)


# --- reading pattern ------------------------------------------------------------------------------


@dataclass
class Delivery:
    """How an answer was spoken, from whisper's word timings."""

    words: int
    rate_wps: float  # words per second of speaking span
    pause_cv: float  # coefficient of variation of the gaps between words
    long_pauses_per_min: float  # gaps >= 1 s
    onset_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "words": self.words,
            "rate_wps": round(self.rate_wps, 2),
            "pause_cv": round(self.pause_cv, 2),
            "long_pauses_per_min": round(self.long_pauses_per_min, 2),
            "onset_s": None if self.onset_s is None else round(self.onset_s, 2),
        }


def delivery(words: Sequence[dict[str, Any]], onset_s: float | None) -> Delivery | None:
    timed = [w for w in words if "start" in w and "end" in w]
    if len(timed) < 8:
        return None
    starts = np.array([float(w["start"]) for w in timed])
    ends = np.array([float(w["end"]) for w in timed])
    span = float(ends[-1] - starts[0])
    if span <= 0:
        return None
    gaps = np.maximum(starts[1:] - ends[:-1], 0.0)
    mean_gap = float(gaps.mean())
    cv = float(gaps.std() / mean_gap) if mean_gap > 1e-3 else 0.0
    return Delivery(
        words=len(timed),
        rate_wps=len(timed) / span,
        pause_cv=cv,
        long_pauses_per_min=float((gaps >= 1.0).sum()) / (span / 60.0),
        onset_s=onset_s,
    )


@dataclass
class ReadingPattern:
    answer: Delivery
    practice: Delivery
    reasons: list[str]


def reading_pattern(
    answer: Delivery | None,
    practice: Delivery | None,
    *,
    onset_min_s: float,
    onset_ratio: float,
    rate_ratio: float,
    pause_cv_ratio: float,
) -> ReadingPattern | None:
    """All three together: a long wait, then faster and more even than the practice answer.

    Any one alone is ordinary (people think before answering; some answers are rehearsed), so
    only the combination is reported, and only as a warning for a person to listen to.
    """
    if answer is None or practice is None or answer.onset_s is None:
        return None
    practice_onset = practice.onset_s if practice.onset_s is not None else 0.0
    waited = answer.onset_s >= max(onset_min_s, onset_ratio * practice_onset)
    faster = answer.rate_wps >= rate_ratio * practice.rate_wps
    steadier = answer.pause_cv <= pause_cv_ratio * practice.pause_cv
    if not (waited and faster and steadier):
        return None
    reasons = [
        f"waited {answer.onset_s:.1f} s before speaking (practice: {practice_onset:.1f} s)",
        f"{answer.rate_wps:.2f} words/s (practice: {practice.rate_wps:.2f})",
        f"pause variability {answer.pause_cv:.2f} (practice: {practice.pause_cv:.2f})",
    ]
    return ReadingPattern(answer=answer, practice=practice, reasons=reasons)
