"""Voice signals: who is speaking on real recorded speech (asterisk prompts, the GE2E
encoder); background voice and reading pattern on espeak-ng speech."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from speech_support import recorded, require_recordings, write_wav
from typer.testing import CliRunner

from interviewer.cli import app
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


@pytest.fixture(scope="module")
def encoder(model_dir: Path) -> speakers.SpeakerEncoder:
    require_recordings()
    return speakers.SpeakerEncoder.load(model_dir)


def changes(
    encoder: speakers.SpeakerEncoder, answer: np.ndarray, practice: np.ndarray | None
) -> list[speakers.Stretch]:
    """The product's check of ``answer`` against a practice voice (``voice_of``)."""
    return speakers.second_voices(speakers.windows(encoder, answer), practice, T)


def voice_of(encoder: speakers.SpeakerEncoder, practice: np.ndarray) -> np.ndarray:
    voice = speakers.windows(encoder, practice).voice()
    assert voice is not None
    return voice


def test_a_second_real_speaker_joining_an_answer_is_flagged(encoder) -> None:
    practice = voice_of(encoder, recorded("en", 0, 25))
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


def test_the_same_real_speaker_across_utterances_is_never_flagged(encoder) -> None:
    practice = voice_of(encoder, recorded("en", 0, 25))
    for first, pause_s in ((40, 0.6), (120, 1.5), (200, 3.0)):
        heard = speakers.windows(encoder, recorded("en", first, 30, pause_s))
        assert speakers.second_voices(heard, practice, T) == []
        assert speakers.second_voices(heard, None, T) == []


@pytest.mark.parametrize(("speaker", "guest"), [("fr", "it"), ("ru", "en"), ("it-f", "it")])
def test_other_real_speakers_alone_are_not_flagged_and_a_guest_is(
    encoder, speaker: str, guest: str
) -> None:
    """Each artist's own answer (1.5 s pauses) passes against their practice; another artist
    joining for 4 s or more is found where it speaks. (Allison joining June or Menardi, three
    women on telephone speech, is missed at the default threshold: docs/proctoring.md.)"""
    practice = voice_of(encoder, recorded(speaker, 0, 20))
    answer = recorded(speaker, 100, 20, pause_s=1.5)
    assert changes(encoder, answer, practice) == []
    joined = recorded(guest, 150, 4)
    mixed = np.concatenate([answer[: 10 * 16_000], joined, answer[10 * 16_000 :]])
    found = changes(encoder, mixed, practice)
    assert len(found) == 1 and not found[0].whole_answer
    assert found[0].start_s < 10 + 1.6 and found[0].end_s > 10 + len(joined) / 16_000 - 1.6
    assert found[0].sure in ("high", "medium", "low")


def test_cli_voices_reports_each_answer_as_json(encoder, model_dir: Path, tmp_path: Path) -> None:
    practice = write_wav(tmp_path / "practice.wav", recorded("en", 0, 20))
    clean = write_wav(tmp_path / "clean.wav", recorded("en", 60, 15))
    other = write_wav(tmp_path / "other.wav", recorded("it", 40, 15))
    args = ["integrity", "voices", "--model-dir", str(model_dir), "--practice", str(practice)]
    result = CliRunner().invoke(app, [*args, str(clean), str(other), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(x["file"], x["second_voice"]) for x in lines] == [
        (str(clean), False),
        (str(other), True),
    ]
    assert lines[0]["stretches"] == []
    (whole,) = lines[1]["stretches"]  # wholly another voice: one stretch covering it
    assert set(whole) == {"start_s", "end_s", "similarity"}
    assert whole["start_s"] < 1 and whole["end_s"] > 14 and whole["similarity"] < 0.75


def test_someone_else_answering_entirely_is_flagged_as_the_whole_answer(encoder) -> None:
    practice = voice_of(encoder, recorded("en", 0, 25))
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
