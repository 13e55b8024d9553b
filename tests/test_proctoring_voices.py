"""Voice signals on real espeak-ng speech: speaker change, background voice, reading pattern."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from interviewer.proctoring import voices
from interviewer.proctoring.thresholds import ProctoringThresholds
from interviewer.voice.tts import render_with_espeak_binary

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")

APPLICANT, OTHER = "en-us", "en-us+f4"  # a male and a female espeak-ng voice
PRACTICE = (
    "I'm a senior backend engineer at a payments company. I mostly write Go and Python, and I "
    "look after our transaction service and its Postgres databases. Before that I worked on "
    "billing systems for a telecom operator for four years."
)
PARTS = [
    "A timeout doesn't mean the charge failed, so retries have to be safe. The client generates "
    "an idempotency key for each payment.",
    "It sends the same key on every retry. The server stores the key with the result, and on a "
    "repeat it returns the stored response.",
    "Recording the key must be atomic, with a unique constraint in the same transaction, so two "
    "simultaneous requests can't both charge.",
]
T = ProctoringThresholds()


def say(tmp_path: Path, voice: str, text: str) -> np.ndarray:
    path = tmp_path / f"{abs(hash((voice, text)))}.wav"
    render_with_espeak_binary(text, voice, 160, path)
    return voices.read_wav(path)


def changes(answer: np.ndarray, practice: np.ndarray | None) -> list[voices.SpeakerChange]:
    ref = voices.voice_prints(practice) if practice is not None else None
    return voices.speaker_changes(
        voices.voice_prints(answer),
        ref,
        distance=T.speaker_change_distance,
        min_segment_s=T.speaker_min_segment_s,
    )


def test_a_second_voice_in_the_middle_of_an_answer_is_a_speaker_change(tmp_path: Path) -> None:
    practice = say(tmp_path, APPLICANT, PRACTICE)
    first, second, third = (
        say(tmp_path, APPLICANT, PARTS[0]),
        say(tmp_path, OTHER, PARTS[1]),
        say(tmp_path, APPLICANT, PARTS[2]),
    )
    answer = np.concatenate([first, second, third])
    switch_in, switch_out = len(first) / 16_000, (len(first) + len(second)) / 16_000

    found = changes(answer, practice)
    assert len(found) == 1
    change = found[0]
    assert change.reference == "practice" and not change.whole_answer
    # located within a window and a half of the true switch points
    assert abs(change.start_s - switch_in) < 1.6 and abs(change.end_s - switch_out) < 1.6
    assert change.distance > T.speaker_change_distance

    # without a practice answer the answer's majority voice is the reference
    alone = changes(answer, None)
    assert len(alone) == 1 and alone[0].reference == "answer"
    assert abs(alone[0].start_s - switch_in) < 1.6


def test_a_clean_single_voice_answer_raises_nothing(tmp_path: Path) -> None:
    practice = say(tmp_path, APPLICANT, PRACTICE)
    answer = say(tmp_path, APPLICANT, " ".join(PARTS))
    assert changes(answer, practice) == []
    assert changes(answer, None) == []


def test_someone_else_answering_entirely_is_flagged_as_the_whole_answer(tmp_path: Path) -> None:
    practice = say(tmp_path, APPLICANT, PRACTICE)
    answer = say(tmp_path, OTHER, " ".join(PARTS))
    found = changes(answer, practice)
    assert len(found) == 1 and found[0].whole_answer


def _with_pauses(tmp_path: Path, background: bool) -> tuple[np.ndarray, list[dict]]:
    """The applicant's three sentences with 2 s pauses; optionally a quieter second voice
    talking throughout (18 dB down), as from another person in the room."""
    rng = np.random.default_rng(0)
    pause = np.zeros(32_000, dtype=np.float32)
    pieces, words, t = [], [], 0.0
    for text in PARTS:
        audio = say(tmp_path, APPLICANT, text)
        tokens = text.split()
        step = len(audio) / 16_000 / len(tokens)
        words += [
            {"word": w, "start": round(t + i * step, 3), "end": round(t + (i + 1) * step, 3)}
            for i, w in enumerate(tokens)
        ]
        pieces += [audio, pause]
        t += (len(audio) + len(pause)) / 16_000
    signal = np.concatenate(pieces)
    if background:
        other = say(tmp_path, OTHER, PRACTICE + " " + PRACTICE)
        other = np.resize(other, len(signal)) * 10 ** (-18 / 20)
        signal = signal + other
    signal = signal + rng.normal(0, 10 ** (-60 / 20), len(signal)).astype(np.float32)
    return signal.astype(np.float32), words


def test_a_quieter_voice_in_the_pauses_is_background_speech(tmp_path: Path) -> None:
    noisy, words = _with_pauses(tmp_path, background=True)
    found = voices.background_voice(noisy, words)
    assert found.seconds >= T.background_voice_warning_s
    assert found.level_below_db > 10

    clean, words = _with_pauses(tmp_path, background=False)
    assert voices.background_voice(clean, words).seconds < T.background_voice_warning_s


def _timings(gaps: list[float], word_s: float = 0.3) -> list[dict]:
    words, t = [], 0.0
    for i, gap in enumerate(gaps):
        words.append({"word": f"w{i}", "start": round(t, 3), "end": round(t + word_s, 3)})
        t += word_s + gap
    return words


def test_reading_pattern_needs_a_long_wait_and_even_fluent_speech() -> None:
    rng = np.random.default_rng(1)
    # practice: natural speech, uneven pauses with a few long ones
    natural = list(rng.choice([0.05, 0.1, 0.15, 0.4, 1.2], size=40, p=[0.3, 0.3, 0.2, 0.15, 0.05]))
    practice = voices.delivery(_timings(natural), onset_s=1.0)
    even = [0.08 + 0.02 * (i % 2) for i in range(80)]
    read = voices.delivery(_timings(even, word_s=0.25), onset_s=11.0)
    kwargs = {
        "onset_min_s": T.reading_onset_min_s,
        "onset_ratio": T.reading_onset_ratio,
        "rate_ratio": T.reading_rate_ratio,
        "pause_cv_ratio": T.reading_pause_cv_ratio,
    }
    found = voices.reading_pattern(read, practice, **kwargs)
    assert found is not None and len(found.reasons) == 3

    # each part alone is ordinary
    quick_start = voices.delivery(_timings(even, word_s=0.25), onset_s=1.2)
    assert voices.reading_pattern(quick_start, practice, **kwargs) is None
    thought_first = voices.delivery(_timings(natural), onset_s=11.0)
    assert voices.reading_pattern(thought_first, practice, **kwargs) is None
    assert voices.reading_pattern(read, None, **kwargs) is None
