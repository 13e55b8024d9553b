"""The end of turn (voice/turns.py) on real human speech: smart-turn v3.2, the policy, the CLI.

Speech: Debian's asterisk prompts (a real speaker, 8 kHz telephone recordings, resampled to
16 kHz). A prompt is "cut mid-phrase" at the quietest 10 ms near the end of a word whisper
timed (tiny.en word timings, measured once; the cut times below). The prompts were chosen where
smart-turn is clear either way: these tests check the model is fed and read correctly and that
the policy holds through a thinking pause; bench/turn_taking.py measures how often it is right.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly
from typer.testing import CliRunner

from interviewer.interview import MAX_CONTINUES
from interviewer.voice.stack import build_vad
from interviewer.voice.stt import transcribe_array
from interviewer.voice.turns import (
    EndOfTurn,
    Pace,
    Replay,
    SmartTurn,
    TurnPolicy,
    replay,
    unfinished_text,
)

SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
RATE = 16_000
COMPLETE = [
    "agent-pass",
    "auth-incorrect",
    "vm-newpassword",
    "conf-placeintoconf",
    "queue-thankyou",
]
# prompt: where "... followed by" / "Press 1 to" ends (s), before the rest of the phrase
CUT = {"agent-pass": 2.44, "auth-incorrect": 3.70, "vm-newpassword": 2.74, "vm-toreply": 1.08}


def prompt(name: str) -> np.ndarray:
    if not (SOUNDS / f"{name}.wav").is_file():
        pytest.fail("asterisk-core-sounds-en-wav is not installed (make apt-test)", pytrace=False)
    raw, sr = sf.read(SOUNDS / f"{name}.wav", dtype="int16")
    return resample_poly(raw.astype(np.float32), RATE // sr, 1).astype(np.int16)


def cut_at(x: np.ndarray, near_s: float) -> int:
    """The quietest 10 ms within 80 ms of ``near_s``: a gap between two words."""
    lo, hi = int((near_s - 0.08) * RATE), int((near_s + 0.08) * RATE)
    frames = x[lo:hi].astype(np.float32)
    n = frames.size // 160
    energy = (frames[: n * 160].reshape(n, 160) ** 2).mean(axis=1)
    return lo + int(np.argmin(energy)) * 160 + 80


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


@pytest.fixture(scope="module")
def model(model_dir: Path) -> SmartTurn:
    return SmartTurn()


def test_model_hears_finished_and_cut_off_phrases(model: SmartTurn) -> None:
    """After the half second of silence the policy waits before asking."""
    for name in COMPLETE:
        x = np.concatenate([prompt(name), silence(0.5)])
        assert model.predict(x, RATE) > 0.8, name
    for name, at in CUT.items():
        x = prompt(name)
        x = np.concatenate([x[: cut_at(x, at)], silence(0.5)])
        assert model.predict(x, RATE) < 0.2, name
    # the same at the telephone rate it was recorded at: resampled inside
    raw, sr = sf.read(SOUNDS / "queue-thankyou.wav", dtype="int16")
    assert model.predict(np.concatenate([raw, np.zeros(4000, np.int16)]), sr) > 0.8


def test_words_that_cannot_end_a_phrase() -> None:
    for text in ("I would start with the", "It depends on, um", "because", "and then,", ""):
        assert unfinished_text(text), text
    for text in ("I liked it.", "Press 2.", "That is all I can say", "Thank you"):
        assert not unfinished_text(text), text


def test_policy_combines_model_words_and_pace() -> None:
    policy = TurnPolicy(max_pause_s=3.0)
    done = policy.verdict(0.95, "I led the migration.", 4.0, [0.4, 0.6, 0.5, 0.7])
    assert done.reason == "finished, slow pace" or done.wait_s < 1.5, done
    assert done.wait_s < 1.5  # a quick speaker who sounds finished: the turn ends soon
    # the model alone is not enough: the words stop on "of"
    assert policy.verdict(0.95, "the design of", 4.0, []).wait_s == 3.0
    # a slow speaker (pauses up to 2 s) who sounds finished still gets their usual pause
    slow = policy.verdict(0.95, "I led the migration.", 4.0, [1.6, 1.9, 2.0, 1.8])
    assert 2.0 < slow.wait_s <= 3.0
    # never past the opening's maximum pause
    assert TurnPolicy(max_pause_s=1.0).verdict(None, "and", 4.0, []).wait_s == 1.0


def test_a_turn_that_can_be_taken_back_waits_less_for_a_finished_pause() -> None:
    """``can_take_back``: a finished-sounding pause with the pace unknown waits only
    ``take_back_wait_s``; unfinished words, a doubtful model and a known pace are unchanged."""
    policy = TurnPolicy(max_pause_s=3.0, unknown_pace_wait_s=2.5, take_back_wait_s=0.7)
    done = "I led the migration."
    slow = policy.verdict(0.95, done, 4.0, [])
    quick = policy.verdict(0.95, done, 4.0, [], can_take_back=True)
    assert (slow.wait_s, slow.reason) == (2.5, "finished, pace unknown")
    assert (quick.wait_s, quick.reason) == (0.7, "finished, pace unknown")
    # two pauses are not a pace yet (pace_pauses is 3)
    assert policy.verdict(0.95, done, 4.0, [0.4, 0.5], can_take_back=True).wait_s == 0.7
    # very short speech still waits its own (longer) wait
    short = policy.verdict(0.95, "Yes.", 0.6, [], can_take_back=True)
    assert (short.wait_s, short.reason) == (1.5, "finished, short")
    # unfinished words, or a model that does not hear an end, still wait the maximum pause
    for probability, text in ((0.95, "the design of"), (0.95, "and then, um"), (0.2, done)):
        v = policy.verdict(probability, text, 4.0, [], can_take_back=True)
        assert (v.wait_s, v.reason) == (3.0, "unfinished"), (probability, text)
    # no model (INTERVIEWER_TURN_MODEL=none): nothing sounds finished, no quick wait
    assert policy.verdict(None, done, 4.0, [], can_take_back=True).wait_s == 3.0
    # once the pace is known the applicant's own pause decides, with the smaller margin a
    # turn that can be taken back allows; unfinished words wait as long either way
    for pauses in ([0.4, 0.6, 0.5, 0.7], [1.6, 1.9, 2.0, 1.8]):
        usual = policy.usual_pause(pauses)
        assert usual is not None
        back = policy.verdict(0.95, done, 4.0, pauses, can_take_back=True)
        assert back.wait_s == pytest.approx(usual + policy.take_back_margin_s)
        assert policy.verdict(0.95, done, 4.0, pauses).wait_s == pytest.approx(
            usual + policy.pace_margin_s
        )
        assert back.take_back_wait_s == back.wait_s
        cut = "the design of"
        assert (
            policy.verdict(0.95, cut, 4.0, pauses, can_take_back=True).wait_s
            == policy.verdict(0.95, cut, 4.0, pauses).wait_s
        )
    assert policy.verdict(0.95, done, 4.0, [1.6, 1.9, 2.0, 1.8], can_take_back=True).wait_s > 2.0
    # a turn that cannot be taken back says when it would have ended if it could (the agent
    # acknowledges the last answer then)
    assert slow.take_back_wait_s == 0.7


def test_a_fluent_speaker_has_a_pace_without_reported_pauses() -> None:
    """Speech whose pauses are all too short for the VAD to report still says something: after
    ``pace_speech_s`` of it, the applicant's usual pause is their longest so far (or the
    shortest the VAD reports), not "unknown"."""
    policy = TurnPolicy(max_pause_s=3.0, pace_speech_s=10.0)
    done = "I led the migration."
    assert policy.usual_pause([], spoken_s=9.0) is None
    assert policy.usual_pause([], spoken_s=12.0) == policy.min_pause_s
    assert policy.usual_pause([0.7], spoken_s=12.0) is None  # one pause in 12 s: too little
    assert policy.usual_pause([0.7], spoken_s=21.0) == 0.7
    assert policy.usual_pause([0.7, 3.2], spoken_s=21.0) == 0.7  # a turn's end is no pause
    assert policy.usual_pause([0.7, 1.9], spoken_s=25.0) is None
    unknown = policy.verdict(0.95, done, 4.0, [], spoken_s=9.0, can_take_back=True)
    assert (unknown.wait_s, unknown.reason) == (policy.take_back_wait_s, "finished, pace unknown")
    fluent = policy.verdict(0.95, done, 4.0, [], spoken_s=12.0, can_take_back=True)
    assert fluent.wait_s == pytest.approx(policy.min_pause_s + policy.take_back_margin_s)
    # never below the first look at the silence
    assert fluent.wait_s >= policy.check_after_s
    # the last answer (no take-back) keeps the larger margin
    last = policy.verdict(0.95, done, 4.0, [], spoken_s=12.0)
    assert last.wait_s == pytest.approx(policy.min_pause_s + policy.pace_margin_s)
    # unfinished words are not hurried by it
    assert policy.verdict(0.95, "the design of", 4.0, [], spoken_s=12.0).wait_s >= 2.0


async def _transcribe(segment: np.ndarray, sample_rate: int) -> str:
    t = await asyncio.to_thread(transcribe_array, segment, model="tiny.en")
    return t.text


async def test_a_thinking_pause_mid_phrase_does_not_end_the_turn(model: SmartTurn) -> None:
    """A real answer with a 1.8 s pause after "followed by": one turn, ending after the true
    end of speech, within the maximum pause (here with the pace still unknown)."""
    x = prompt("vm-newpassword")
    cut = cut_at(x, CUT["vm-newpassword"])
    audio = np.concatenate([silence(0.5), x[:cut], silence(1.8), x[cut:], silence(4.0)])
    policy = TurnPolicy(max_pause_s=3.0)
    out = await replay(
        audio,
        RATE,
        vad_model=build_vad(),
        end_of_turn=EndOfTurn(policy, model),
        transcribe=_transcribe,
    )
    assert out.speech_end_s is not None
    assert len(out.turn_ends_s) == 1, out.decisions
    assert out.speech_end_s < out.turn_ends_s[0] <= out.speech_end_s + policy.max_pause_s + 0.01
    first = out.decisions[0]
    assert not first["ends_turn"] and 1.7 < first["pause_s"] < 2.0, first
    # whisper hears "... followed by" (some runs add a "the..."): words that cannot end it
    assert first["reason"] == "unfinished" and unfinished_text(first["text"]), first
    # the same answer once the applicant's pace is known (their pauses around 1.8 s): the
    # turn still holds through the pause
    paced = await replay(
        audio,
        RATE,
        vad_model=build_vad(),
        end_of_turn=EndOfTurn(policy, model),
        transcribe=_transcribe,
        pace=Pace([1.5, 1.8, 1.7, 1.9]),
    )
    assert len(paced.turn_ends_s) == 1, paced.decisions
    assert paced.speech_end_s < paced.turn_ends_s[0] <= paced.speech_end_s + 3.01


# two finished sentences of one speaker (smart-turn > 0.8 after each, whisper ends them with a
# full stop), no pause of their own long enough for the policy to ask
SENTENCES = ("conf-placeintoconf", "queue-thankyou")


class CachedTranscribe:
    """``_transcribe`` remembered per segment: the same audio is replayed several times."""

    def __init__(self) -> None:
        self.texts: dict[bytes, str] = {}

    async def __call__(self, segment: np.ndarray, sample_rate: int) -> str:
        key = segment.tobytes()
        if key not in self.texts:
            self.texts[key] = await _transcribe(segment, sample_rate)
        return self.texts[key]


async def test_replay_takes_back_a_turn_ended_inside_a_short_pause(model: SmartTurn) -> None:
    """Two finished sentences, 1.5 s apart, under a quick policy (0.8 s for a finished pause
    while the pace is unknown). With take-back the turn ends inside the pause, the second
    sentence takes it back, the pause is learnt as pace, and the turn ends once, after the
    second sentence. Without take-back the turn ends inside the pause: the answer is cut."""
    first, second = (prompt(name) for name in SENTENCES)
    audio = np.concatenate([silence(0.5), first, silence(1.5), second, silence(4.0)])
    policy = TurnPolicy(max_pause_s=3.0, unknown_pace_wait_s=0.8, take_back_wait_s=0.8)
    vad = build_vad()
    transcribe = CachedTranscribe()

    async def run(p: TurnPolicy, take_back: bool, pace: Pace) -> Replay:
        return await replay(
            audio,
            RATE,
            vad_model=vad,
            end_of_turn=EndOfTurn(p, model),
            transcribe=transcribe,
            pace=pace,
            take_back=take_back,
        )

    pace = Pace()
    back = await run(policy, True, pace)
    assert back.speech_end_s is not None
    asked = [d for d in back.decisions if d["pause_s"] is not None]
    assert len(asked) == 1, back.decisions  # the 1.5 s pause is the only one the policy asks
    pause = asked[0]
    assert 1.3 < pause["pause_s"] < 1.8, pause
    assert pause["reason"] == "finished, pace unknown" and pause["wait_s"] == 0.8, pause
    assert pause["ends_turn"] and pause["taken_back"], pause
    assert back.taken_back_s == [round(pause["speech_end_s"] + 0.8, 3)]
    assert len(back.turn_ends_s) == 1, back.decisions
    assert back.speech_end_s < back.turn_ends_s[0] <= back.speech_end_s + 0.81
    assert any(abs(p - pause["pause_s"]) < 1e-6 for p in pace.pauses), pace  # learnt as pace

    pace = Pace()
    cut = await run(policy, False, pace)
    assert cut.taken_back_s == [] and not any(d["taken_back"] for d in cut.decisions)
    assert len(cut.turn_ends_s) == 2, cut.decisions
    assert cut.turn_ends_s[0] == back.taken_back_s[0] < cut.speech_end_s  # inside the pause
    assert cut.turn_ends_s[1] > cut.speech_end_s
    assert not any(abs(p - pause["pause_s"]) < 1e-6 for p in pace.pauses), pace

    # a pause longer than take_back_s: the speech after it starts a new answer
    late = await run(dataclasses.replace(policy, take_back_s=1.0), True, Pace())
    assert late.taken_back_s == [] and len(late.turn_ends_s) == 2, late.decisions


async def test_replay_takes_a_turn_back_at_most_max_continues_times(model: SmartTurn) -> None:
    """The same sentence five times, 1.5 s apart, the pace kept unknown: the first
    MAX_CONTINUES pauses get the quick wait and are taken back; then the turn can no longer be
    taken back, so the next pause gets the ordinary wait and, past it, ends the answer."""
    x = prompt(SENTENCES[1])
    parts = [silence(0.5)]
    for _ in range(MAX_CONTINUES + 2):
        parts += [x, silence(1.5)]
    audio = np.concatenate([*parts[:-1], silence(4.0)])
    policy = TurnPolicy(
        max_pause_s=3.0,
        unknown_pace_wait_s=1.2,
        take_back_wait_s=0.8,
        pace_pauses=100,
        pace_speech_s=1000.0,
    )
    out = await replay(
        audio,
        RATE,
        vad_model=build_vad(),
        end_of_turn=EndOfTurn(policy, model),
        transcribe=CachedTranscribe(),
        take_back=True,
    )
    assert out.speech_end_s is not None
    asked = [d for d in out.decisions if d["pause_s"] is not None]
    assert len(asked) == MAX_CONTINUES + 1, out.decisions
    assert all(d["ends_turn"] and 1.3 < d["pause_s"] < 1.8 for d in asked), asked
    assert [d["wait_s"] for d in asked] == [0.8] * MAX_CONTINUES + [1.2], asked
    assert [d["taken_back"] for d in asked] == [True] * MAX_CONTINUES + [False], asked
    assert len(out.taken_back_s) == MAX_CONTINUES
    # the fourth pause cuts the answer; the fifth sentence is a turn of its own
    assert len(out.turn_ends_s) == 2, out.decisions
    assert out.turn_ends_s[0] < out.speech_end_s < out.turn_ends_s[1], out.decisions


def test_cli_turns_json(tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`interviewer turns --json`: one line per file, turn ends after the speech; a turn that
    ends inside a short pause between two finished sentences is taken back (as live)."""
    from interviewer.cli import app
    from interviewer.config import get_settings

    def write(name: str, audio: np.ndarray) -> Path:
        path = tmp_path / f"{name}.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(audio.tobytes())
        return path

    files = []
    for name in ("agent-pass", "vm-toreply"):
        x = prompt(name)
        cut = cut_at(x, CUT[name])
        files.append(
            write(
                name, np.concatenate([silence(0.4), x[:cut], silence(1.8), x[cut:], silence(3.5)])
            )
        )
    # the default policy's quick wait for a finished pause (pace unknown), and some more
    pause = TurnPolicy().take_back_wait_s + 0.7
    first, second = (prompt(name) for name in SENTENCES)
    files.append(
        write("two", np.concatenate([silence(0.4), first, silence(pause), second, silence(3.5)]))
    )
    monkeypatch.setenv("INTERVIEWER_STT_MODEL", "tiny.en")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["turns", "--json", *map(str, files)])
        text = CliRunner().invoke(app, ["turns", str(files[-1])])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(f) for f in files]
    for line in lines:
        assert set(line) == {"file", "turn_ends_s", "speech_end_s", "taken_back_s"}
        assert isinstance(line["speech_end_s"], float)
        assert len(line["turn_ends_s"]) == 1, line  # neither pause ended the answer
        assert line["speech_end_s"] < line["turn_ends_s"][0] <= line["speech_end_s"] + 3.01
    # "followed by" / "Press 1 to": unfinished, the agent waits through the 1.8 s pause
    assert lines[0]["taken_back_s"] == [] and lines[1]["taken_back_s"] == []
    back = lines[2]["taken_back_s"]
    assert len(back) == 1 and back[0] < lines[2]["speech_end_s"] - 1.0, lines[2]
    assert text.exit_code == 0, text.output
    assert "turn ends, taken back by the speech after it" in text.stdout, text.stdout
    assert f"taken back at: {back[0]:.2f} s" in text.stdout, text.stdout
