"""The old speaker-change detector (MFCC and pitch voice prints), kept for the bench only.

bench/proctoring.py runs it side by side with the product's speaker encoder
(interviewer/proctoring/speakers.py) on the same real recordings, so the figures in
docs/proctoring.md can be reproduced. Nothing in interviewer/ imports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from interviewer.proctoring.voices import HOP_S, N_MFCC, frame_features, runs, speech_mask

MIN_WINDOW_SPEECH = 0.5


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
    for first, last in runs(far):
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


OLD_DISTANCE = 2.5  # the old product default (speaker_change_distance)
