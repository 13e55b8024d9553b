"""Voice signals: who is speaking on real recorded speech (asterisk prompts, the GE2E
encoder); background voice and reading pattern on espeak-ng speech."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from interviewer.errors import UserError
from interviewer.proctoring import speakers, voices
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


SOUNDS = Path("/usr/share/asterisk/sounds")


def recorded(language: str, first: int, seconds: float) -> np.ndarray:
    """Real recorded prompts of one voice artist (Debian's asterisk sounds), 0.6 s apart."""
    files = sorted((SOUNDS / language).glob("*.wav"))
    files = [f for f in files if f.stat().st_size > 16_000][first:]
    parts, total = [], 0
    for f in files:
        parts += [voices.read_wav(f), np.zeros(9_600, dtype=np.float32)]
        total += len(parts[-2]) + 9_600
        if total >= seconds * 16_000:
            break
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def encoder() -> speakers.SpeakerEncoder:
    try:
        return speakers.SpeakerEncoder.load()
    except UserError as err:
        pytest.skip(str(err))


def changes(
    encoder: speakers.SpeakerEncoder, answer: np.ndarray, practice: np.ndarray | None
) -> list[speakers.Stretch]:
    ref = speakers.windows(encoder, practice).voice() if practice is not None else None
    return speakers.second_voice(
        speakers.windows(encoder, answer),
        ref,
        window_similarity=T.speaker_window_similarity,
        standin_similarity=T.speaker_standin_similarity,
        min_segment_s=T.speaker_min_segment_s,
    )


needs_recordings = pytest.mark.skipif(
    not (SOUNDS / "en").is_dir() or not (SOUNDS / "it").is_dir(),
    reason="needs asterisk-core-sounds-en-wav and -it-wav",
)


@needs_recordings
def test_a_second_real_speaker_joining_an_answer_is_flagged(encoder) -> None:
    practice = recorded("en", 0, 25)
    first, second, third = recorded("en", 60, 12), recorded("it", 0, 5), recorded("en", 90, 12)
    answer = np.concatenate([first, second, third])
    switch_in, switch_out = len(first) / 16_000, (len(first) + len(second)) / 16_000

    found = changes(encoder, answer, practice)
    assert len(found) == 1
    change = found[0]
    assert change.compared_with == "practice and answer" and not change.whole_answer
    # located within a window of the true switch points
    assert abs(change.start_s - switch_in) < 1.6 and abs(change.end_s - switch_out) < 1.6
    assert change.similarity < T.speaker_window_similarity

    # without a practice answer the answer's dominant voice is the reference
    alone = changes(encoder, answer, None)
    assert len(alone) == 1 and alone[0].compared_with == "answer"
    assert abs(alone[0].start_s - switch_in) < 1.6


@needs_recordings
def test_the_same_real_speaker_across_utterances_is_never_flagged(encoder) -> None:
    practice = recorded("en", 0, 25)
    for first in (40, 120, 200):
        answer = recorded("en", first, 30)
        assert changes(encoder, answer, practice) == []
        assert changes(encoder, answer, None) == []


@needs_recordings
def test_someone_else_answering_entirely_is_flagged_as_the_whole_answer(encoder) -> None:
    practice = recorded("en", 0, 25)
    answer = recorded("it", 40, 30)
    found = changes(encoder, answer, practice)
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
