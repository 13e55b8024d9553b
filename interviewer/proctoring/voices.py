"""Whose voice answers: speaker changes, a second voice in the background, reading aloud.

All three compare an answer with the applicant's own practice answer, recorded minutes earlier
on the same microphone in the same room, so the comparison is with this person, not with a
population norm: a fast talker is not "reading" and a deep voice is not "someone else".

* Speaker change: the audio is cut into ~1.5 s windows; each window becomes a small voice
  print (mean and spread of MFCCs, median pitch), z-scored against the practice answer's
  windows. A run of windows far from the practice voice (several seconds; a cough or a laugh is
  one window) is a stretch spoken by someone else, or the whole answer when every window is far.
  Without a usable practice answer the answer's own majority voice is the reference.
* Background voice: voiced sound (periodic, pitch in the human range) in the gaps between the
  applicant's words (whisper's word timings), well above the room's noise floor and well below
  the applicant's level: somebody talking quietly nearby.
* Reading pattern: a long wait before answering followed by unusually even, fluent speech
  (faster, with steadier pauses than the practice answer), the way a prepared text sounds.

Everything here is plain, blocking numpy/scipy: callers run it in an executor or a worker.
MFCC voice prints are a cheap, honest baseline, not a speaker-verification model: they separate
clearly different voices (sex, accent, synthetic vs real) and are documented as such.
"""

from __future__ import annotations

import itertools
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
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
N_MFCC = 13  # c0 (loudness) is dropped from voice prints: it follows the mic, not the speaker
PITCH_FRAME_S = 0.040
MIN_F0, MAX_F0 = 60.0, 400.0
VOICED_CORRELATION = 0.45
SILENCE_DB = -40.0  # below the answer's loud level: not speech
MIN_WINDOW_SPEECH = 0.5  # a window needs half its frames to be speech to make a voice print


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


# --- voice prints --------------------------------------------------------------------------------


@dataclass
class Windows:
    """Voice prints of the windows of one answer that hold enough speech."""

    starts: np.ndarray  # (n,) seconds
    prints: np.ndarray  # (n, d)
    window_s: float

    def __len__(self) -> int:
        return len(self.starts)


def voice_prints(signal: np.ndarray, window_s: float = 1.5, hop_s: float = 0.75) -> Windows:
    features = frame_features(signal)
    speech = speech_mask(features)
    per_window = round(window_s / HOP_S)
    step = max(1, round(hop_s / HOP_S))
    starts, prints = [], []
    for first in range(0, max(1, features.count - per_window + 1), step):
        sel = slice(first, first + per_window)
        mask = speech[sel]
        if mask.sum() < MIN_WINDOW_SPEECH * per_window:
            continue
        coeffs = features.mfcc[sel][mask][:, 1:]
        f0 = features.f0[sel][mask]
        f0 = f0[~np.isnan(f0)]
        pitch = float(np.log(np.median(f0))) if len(f0) >= 10 else np.nan
        prints.append(np.concatenate([coeffs.mean(axis=0), coeffs.std(axis=0), [pitch]]))
        starts.append(first * HOP_S)
    dims = 2 * (N_MFCC - 1) + 1
    array = np.array(prints) if prints else np.zeros((0, dims))
    if len(array):  # unvoiced windows take the answer's typical pitch
        pitch = array[:, -1]
        fill = np.nanmedian(pitch) if np.isfinite(pitch).any() else 0.0
        array[:, -1] = np.where(np.isnan(pitch), fill, pitch)
    return Windows(starts=np.array(starts, dtype=float), prints=array, window_s=window_s)


@dataclass
class VoiceModel:
    """The reference voice: centre and spread of its windows' prints (robust statistics)."""

    center: np.ndarray
    scale: np.ndarray
    windows: int

    @classmethod
    def of(cls, prints: np.ndarray) -> VoiceModel:
        center = np.median(prints, axis=0)
        mad = 1.4826 * np.median(np.abs(prints - center), axis=0)
        # a floor so one steady feature (espeak's flat pitch) cannot make every change huge
        floor = np.maximum(0.15 * np.abs(center), 0.05)
        floor[-1] = 0.06  # pitch, in log Hz: ~6 %
        return cls(center=center, scale=np.maximum(mad, floor), windows=len(prints))

    def distance(self, prints: np.ndarray) -> np.ndarray:
        """RMS z-score of each print against this voice: ~1 for the same voice."""
        z = (prints - self.center) / self.scale
        return np.sqrt(np.mean(z**2, axis=1))


@dataclass
class SpeakerChange:
    start_s: float
    end_s: float
    distance: float  # median distance of the stretch to the reference voice
    whole_answer: bool
    reference: str  # "practice" or "answer"
    window_distances: list[float] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def _majority_voice(prints: np.ndarray, iterations: int = 20) -> VoiceModel:
    """The voice of most windows: two-means on z-scored prints, keep the larger cluster.

    A median over the whole answer would be pulled towards a second voice that speaks a third
    of it; the larger cluster is the applicant's voice by assumption (documented).
    """
    overall = VoiceModel.of(prints)
    z = (prints - overall.center) / overall.scale
    pairwise = ((z[:, None, :] - z[None, :, :]) ** 2).sum(axis=-1)
    i, j = np.unravel_index(np.argmax(pairwise), pairwise.shape)
    centers = np.stack([z[i], z[j]])
    labels = np.zeros(len(z), dtype=int)
    for _ in range(iterations):
        labels = np.argmin(((z[:, None, :] - centers[None]) ** 2).sum(axis=-1), axis=1)
        centers = np.stack(
            [z[labels == k].mean(axis=0) if (labels == k).any() else centers[k] for k in (0, 1)]
        )
    major = int(np.bincount(labels, minlength=2).argmax())
    return VoiceModel.of(prints[labels == major])


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, flag in enumerate([*list(flags), False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    return runs


def _smooth(values: np.ndarray, width: int = 3) -> np.ndarray:
    if len(values) < width:
        return values
    padded = np.pad(values, width // 2, mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, width), axis=1)


def speaker_changes(
    answer: Windows,
    practice: Windows | None,
    *,
    distance: float,
    min_segment_s: float,
    min_practice_windows: int = 6,
) -> list[SpeakerChange]:
    """Stretches of ``answer`` spoken in a voice other than the reference voice."""
    if len(answer) == 0:
        return []
    if practice is not None and len(practice) >= min_practice_windows:
        model, reference = VoiceModel.of(practice.prints), "practice"
    elif len(answer) >= 2 * min_practice_windows:
        model, reference = _majority_voice(answer.prints), "answer"
    else:
        return []
    dist = _smooth(model.distance(answer.prints))
    far = dist > distance
    hop = float(np.median(np.diff(answer.starts))) if len(answer) > 1 else answer.window_s
    changes = []
    for first, last in _runs(far):
        start = float(answer.starts[first])
        end = float(answer.starts[last - 1] + answer.window_s)
        # run length counted in hops (windows overlap), so 3 s means ~3 s of distinct audio
        if (last - first - 1) * hop + answer.window_s < min_segment_s:
            continue
        changes.append(
            SpeakerChange(
                start_s=round(start, 2),
                end_s=round(end, 2),
                distance=round(float(np.median(dist[first:last])), 2),
                whole_answer=bool(far.mean() >= 0.9),
                reference=reference,
                window_distances=[round(float(d), 2) for d in dist[first:last]],
            )
        )
    return changes


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
    for first, last in _runs(~candidate):
        if first > 0 and last < len(candidate) and (last - first) * HOP_S <= 0.1:
            joined[first:last] = in_gap[first:last]
    spans, levels = [], []
    for first, last in _runs(joined):
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
