"""Who is speaking: a trained speaker encoder (GE2E) and the voice comparisons built on it.

The encoder turns ~1.6 s of speech into a 256-d unit vector; the cosine of two such vectors is
high for one person (0.8-0.9 on real speech) and low for two (0.4-0.6). Every voice question in
proctoring is a comparison of those vectors: a window of an answer against the answer's own
dominant voice and the practice answer (a second voice inside an answer), a whole answer against
the practice answer (a stand-in), and one interview's voice against other interviews' (the same
person under several names, see proctoring/duplicates.py).

The network is Resemblyzer's (3-layer LSTM over 40 mel bands, a linear layer, ReLU, L2 norm),
rebuilt here and fed the state dict that `interviewer models install` copies out of the
``resemblyzer`` wheel: importing the package itself would load webrtcvad, which needs setuptools'
pkg_resources at import, and would read its weights from site-packages rather than the checked
model directory. Blocking (torch, librosa): callers run it in an executor or a worker process.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import librosa
import numpy as np
import torch
from torch import nn

from interviewer.errors import ModelError
from interviewer.proctoring import voices
from interviewer.proctoring.thresholds import ProctoringThresholds
from interviewer.weights import speaker_encoder_file

SAMPLE_RATE = voices.SAMPLE_RATE
MEL_BANDS = 40
HOP = 160  # 10 ms
WINDOW_S = 1.6  # what the encoder was trained on (160 frames)
HOP_S = 0.4  # a window every 0.4 s of speech
SPAN_WINDOWS = 3  # the detector judges 3 windows together: 2.4 s of speech
TARGET_DBFS = -30.0  # Resemblyzer's loudness normalisation, raising quiet audio only
KEEP_PAUSE_S = 0.2  # speech is compacted first: pauses longer than this are cut to it
MODEL = "ge2e-speaker"  # stored with voice prints: prints of another encoder never compare
MIN_PRINT_SPEECH_S = 5.0  # an interview's voice print averages at least this much speech


class _Ge2e(nn.Module):
    """Resemblyzer's VoiceEncoder network, so its state dict loads as it is."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(MEL_BANDS, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, 256)
        self.relu = nn.ReLU()

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        raw = self.relu(self.linear(hidden[-1]))
        return raw / torch.norm(raw, dim=1, keepdim=True).clamp_min(1e-9)


class SpeakerEncoder:
    """The loaded encoder; ``embed`` maps windows of 16 kHz speech to unit vectors."""

    def __init__(self, weights: Path) -> None:
        try:
            checkpoint = torch.load(weights, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as err:
            raise ModelError(
                f"{weights}: cannot load the speaker encoder ({err}): run "
                "`interviewer models install --only ge2e-speaker`"
            ) from None
        self.net = _Ge2e()
        # strict=False: the checkpoint also holds GE2E's training-only similarity scale/bias
        self.net.load_state_dict(checkpoint["model_state"], strict=False)
        self.net.eval()

    @classmethod
    def load(cls, model_dir: Path | str | None = None) -> SpeakerEncoder:
        """From the model directory (checked against its manifest); a ModelError if absent."""
        return _cached(str(model_dir) if model_dir is not None else None)

    def embed(self, clips: list[np.ndarray]) -> np.ndarray:
        """One unit vector per clip of WINDOW_S seconds (shorter clips are zero-padded)."""
        if not clips:
            return np.zeros((0, 256), dtype=np.float32)
        size = round(WINDOW_S * SAMPLE_RATE)
        mels = np.stack([_mel(np.pad(c[:size], (0, max(0, size - len(c))))) for c in clips])
        with torch.no_grad():
            return self.net(torch.from_numpy(mels)).numpy()


@cache
def _cached(model_dir: str | None) -> SpeakerEncoder:
    return SpeakerEncoder(speaker_encoder_file(Path(model_dir) if model_dir else None))


def _mel(clip: np.ndarray) -> np.ndarray:
    frames = librosa.feature.melspectrogram(
        y=clip, sr=SAMPLE_RATE, n_fft=400, hop_length=HOP, n_mels=MEL_BANDS
    )
    return frames.astype(np.float32).T[: round(WINDOW_S * SAMPLE_RATE / HOP)]


def _normalized(signal: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(signal**2))) if len(signal) else 0.0
    if rms <= 1e-6:
        return signal
    gain_db = TARGET_DBFS - 20 * np.log10(rms)
    return signal * (10 ** (gain_db / 20)) if gain_db > 0 else signal


@dataclass
class Speech:
    """An answer's speech with its long pauses cut, and where each kept sample was."""

    samples: np.ndarray
    times: np.ndarray  # original time (s) of each kept sample

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def speech_only(signal: np.ndarray) -> Speech:
    """The speech of ``signal``, pauses shortened to KEEP_PAUSE_S (the encoder hears voices,
    and a window half silent would say more about the room than the speaker)."""
    features = voices.frame_features(signal)
    speech = voices.speech_mask(features)
    keep = speech.copy()
    pause = round(KEEP_PAUSE_S / voices.HOP_S)
    for first, last in voices.runs(~speech):
        keep[first : min(last, first + pause)] = True
    if speech.any():  # no leading or trailing silence
        on = np.flatnonzero(speech)
        keep[: on[0]] = False
        keep[on[-1] + 1 :] = False
    hop = round(voices.HOP_S * SAMPLE_RATE)
    per_sample = np.repeat(keep, hop)[: len(signal)]
    per_sample = np.pad(per_sample, (0, len(signal) - len(per_sample)))
    index = np.flatnonzero(per_sample)
    return Speech(samples=_normalized(signal[index]), times=index / SAMPLE_RATE)


@dataclass
class Windows:
    """Embeddings of overlapping windows of an answer's speech, with their original times."""

    starts: np.ndarray  # (n,) seconds in the original recording
    ends: np.ndarray
    vectors: np.ndarray  # (n, 256), unit length
    speech_s: float = 0.0  # seconds of speech the windows cover

    def __len__(self) -> int:
        return len(self.starts)

    def voice(self) -> np.ndarray | None:
        """The whole stretch's voice: the normalised mean of its windows."""
        if not len(self):
            return None
        mean = self.vectors.mean(axis=0)
        return mean / max(float(np.linalg.norm(mean)), 1e-9)


def windows(encoder: SpeakerEncoder, signal: np.ndarray, hop_s: float = HOP_S) -> Windows:
    """Windows of WINDOW_S seconds of speech every ``hop_s`` seconds of speech."""
    speech = speech_only(signal)
    size, step = round(WINDOW_S * SAMPLE_RATE), round(hop_s * SAMPLE_RATE)
    if len(speech.samples) < size // 2:
        empty = np.zeros(0)
        return Windows(empty, empty, np.zeros((0, 256), dtype=np.float32), speech.seconds)
    firsts = list(range(0, max(1, len(speech.samples) - size + 1), step))
    clips = [speech.samples[f : f + size] for f in firsts]
    lasts = [min(f + size, len(speech.samples)) - 1 for f in firsts]
    return Windows(
        starts=speech.times[firsts],
        ends=speech.times[lasts],
        vectors=encoder.embed(clips),
        speech_s=speech.seconds,
    )


def dominant_voice(vectors: np.ndarray) -> np.ndarray:
    """The voice of most windows: the mean, then the mean of the half closest to it.

    A plain mean is pulled towards a second voice that speaks a third of the answer; the
    closer half is the applicant by assumption (a takeover of more than half the answer is
    the stand-in case, caught against the practice answer).
    """
    center = vectors.mean(axis=0)
    center /= max(float(np.linalg.norm(center)), 1e-9)
    sims = vectors @ center
    close = vectors[sims >= np.median(sims)]
    center = close.mean(axis=0)
    return center / max(float(np.linalg.norm(center)), 1e-9)


@dataclass
class Stretch:
    """Part of an answer spoken in a voice other than the applicant's."""

    start_s: float
    end_s: float
    similarity: float  # median cosine of the stretch to the applicant's voice (1 = identical)
    whole_answer: bool  # the whole answer is in another voice than the practice answer
    compared_with: str  # "practice" or "practice and answer" or "answer"
    threshold: float = 0.0  # the similarity below which it was flagged

    @property
    def sure(self) -> str:
        return how_sure(self.similarity, self.threshold)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def as_dict(self) -> dict[str, float]:
        return {"start_s": self.start_s, "end_s": self.end_s, "similarity": self.similarity}


def how_sure(similarity: float, threshold: float) -> str:
    """How far below the threshold a flagged voice is, in words a recruiter can weigh (from
    bench/proctoring.py on real speech, docs/proctoring.md): "high" (0.15 or more below: only
    other people scored there), "medium" (0.05-0.15 below: where most other people score),
    "low" (within 0.05: one person's own speech went as low as 0.77; listen first)."""
    margin = threshold - similarity
    return "high" if margin >= 0.15 else "medium" if margin >= 0.05 else "low"


def how_sure_same(similarity: float, threshold: float) -> str:
    """The same for two voice prints found alike: how far above the threshold ("high" from
    0.05 above: where one person on one set-up scores, 0.95-0.99)."""
    margin = similarity - threshold
    return "high" if margin >= 0.05 else "medium" if margin >= 0.02 else "low"


def spans(answer: Windows, width: int = SPAN_WINDOWS) -> Windows:
    """``width`` consecutive windows averaged into one vector (2.4 s of speech by default).

    Averaging embeddings steadies them far more than a median of cosines does: on the bench's
    real speech, one person's lowest score rose from 0.76 to 0.80 while a second speaker's
    stayed near 0.70. A cough or a laugh inside one window no longer stands for a voice.
    """
    if len(answer) < width:
        return answer
    shape = (width, answer.vectors.shape[1])
    mean = np.lib.stride_tricks.sliding_window_view(answer.vectors, shape)[:, 0].mean(axis=1)
    mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-9)
    count = len(mean)
    return Windows(answer.starts[:count], answer.ends[width - 1 :], mean, answer.speech_s)


def second_voice(
    answer: Windows,
    practice: np.ndarray | None,
    *,
    window_similarity: float,
    standin_similarity: float,
    min_segment_s: float,
) -> list[Stretch]:
    """Stretches of ``answer`` in another voice than the applicant's; [] when there are none.

    ``practice`` is the practice answer's voice (``Windows.voice()``), or None when there is
    no usable practice answer. The whole answer below ``standin_similarity`` to the practice
    voice is one stretch (a stand-in). Otherwise a window is someone else when it is below
    ``window_similarity`` to both the answer's dominant voice and the practice voice, and a run
    of such windows spanning at least ``min_segment_s`` is a stretch.
    """
    voice = answer.voice()
    if voice is None:
        return []
    if practice is not None:
        overall = float(voice @ practice)
        if overall < standin_similarity:
            return [
                Stretch(
                    start_s=round(float(answer.starts[0]), 2),
                    end_s=round(float(answer.ends[-1]), 2),
                    similarity=round(overall, 3),
                    whole_answer=True,
                    compared_with="practice",
                    threshold=standin_similarity,
                )
            ]
    spoken = spans(answer)
    sims = spoken.vectors @ dominant_voice(answer.vectors)
    compared = "answer"
    if practice is not None:
        sims = np.maximum(sims, spoken.vectors @ practice)
        compared = "practice and answer"
    stretches = []
    for first, last in voices.runs(sims < window_similarity):
        start, end = float(spoken.starts[first]), float(spoken.ends[last - 1])
        if end - start < min_segment_s:
            continue
        stretches.append(
            Stretch(
                start_s=round(start, 2),
                end_s=round(end, 2),
                similarity=round(float(np.median(sims[first:last])), 3),
                whole_answer=False,
                compared_with=compared,
                threshold=window_similarity,
            )
        )
    return stretches


def second_voices(
    answer: Windows, practice: np.ndarray | None, thresholds: ProctoringThresholds
) -> list[Stretch]:
    """The product's check of one answer's windows against the practice voice: the one call
    the analysis, ``interviewer integrity voices``, the tests and the bench all make, so the
    figures in docs/proctoring.md are the detector's as shipped."""
    return second_voice(
        answer,
        practice,
        window_similarity=thresholds.speaker_window_similarity,
        standin_similarity=thresholds.speaker_standin_similarity,
        min_segment_s=thresholds.speaker_min_segment_s,
    )
