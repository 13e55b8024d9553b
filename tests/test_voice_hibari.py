"""The neural voice (voice/hibari.py) with its real weights: what it says whisper hears back,
lines stream sentence by sentence, the prompt cache never mixes voices, an opening's voice
reaches its session and the bank editor's Listen, and missing weights are a clear error with
no download attempted."""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from test_weights import wer
from web_support import FIXTURE_ANSWERS, make_settings, seed_interview

from interviewer import weights
from interviewer.errors import ModelError, UserError
from interviewer.voice.hibari import HibariTTS, sentences
from interviewer.voice.stack import build_tts
from interviewer.voice.stt import transcribe_file
from interviewer.voice.tts import Pyttsx3TTS

INTERVIEWER = str(Path(sys.executable).with_name("interviewer"))
PROMPT = "Walk me through how you would value a company that has never made a profit."
LONG = (
    "Thank you for that answer. Now a harder one. Suppose the board asks you to cut costs "
    "by a fifth within a year. Which three measures would you propose first, and why?"
)


def _write(path: Path, pcm: bytes, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return path


async def test_hibari_prompt_transcribes_back(tmp_path: Path, model_dir: Path) -> None:
    tts = HibariTTS(cache_dir=tmp_path, model_dir=model_dir)
    pcm = await tts.pcm(PROMPT)
    assert tts.sample_rate == 24_000 and len(pcm) / 2 / tts.sample_rate > 2.0
    wav = _write(tmp_path / "prompt.wav", pcm, tts.sample_rate)
    heard = transcribe_file(wav, backend="faster-whisper", model="tiny.en").text
    assert wer(PROMPT, heard) == 0, heard


async def test_long_lines_stream_sentence_by_sentence(tmp_path: Path, model_dir: Path) -> None:
    """A miss pushes each sentence as it is synthesised (``on_line`` hears the line, then each
    later sentence as its continuation); the cached replay is the same audio, in one piece."""
    lines: list[tuple[str, float]] = []
    tts = HibariTTS(
        cache_dir=tmp_path, model_dir=model_dir, on_line=lambda t, s: lines.append((t, s))
    )

    async def frames() -> bytes:
        async with tts.synthesize(LONG) as stream:
            return b"".join([bytes(ev.frame.data) async for ev in stream])

    streamed = await frames()
    parts = sentences(LONG)
    assert len(parts) == 4
    assert [t for t, _ in lines] == [LONG, "", "", ""]
    assert all(s > 0.3 for _, s in lines)
    total = len(streamed) / 2 / tts.sample_rate
    assert abs(sum(s for _, s in lines) - total) < 0.06  # frames pad the last one to 50 ms
    assert (tts.cache_hits, tts.cache_misses) == (0, 1)

    lines.clear()
    replayed = await frames()
    assert (tts.cache_hits, tts.cache_misses) == (1, 1)
    assert replayed == streamed  # seeded per sentence: the cache holds what was heard
    assert [t for t, _ in lines] == [LONG]
    heard = transcribe_file(
        _write(tmp_path / "long.wav", streamed, tts.sample_rate),
        backend="faster-whisper",
        model="tiny.en",
    ).text
    assert wer(LONG, heard) <= 2 / len(LONG.split()), heard


async def test_the_cache_never_mixes_voices(tmp_path: Path, model_dir: Path) -> None:
    settings = make_settings(tmp_path, model_dir=model_dir)
    neural, light = build_tts(settings), build_tts(settings, voice="espeak")
    assert isinstance(neural, HibariTTS) and isinstance(light, Pyttsx3TTS)
    assert neural.cache_dir == light.cache_dir  # one folder ...
    assert neural.cache_path(PROMPT) != light.cache_path(PROMPT)  # ... never the same file
    assert await neural.prerender([PROMPT, PROMPT]) == 1
    assert not light.cache_path(PROMPT).exists()  # the other voice's cache is not filled
    assert await light.prerender([PROMPT]) == 1
    a, b = await neural.pcm(PROMPT), await light.pcm(PROMPT)
    assert a != b
    # hibari's audio is the neural one: its length is not espeak-ng's for the same text
    assert abs(len(a) - len(b)) / max(len(a), len(b)) > 0.05
    assert await build_tts(settings).prerender([PROMPT]) == 0  # a new instance: same cache


def test_missing_weights_are_a_clear_error_and_nothing_downloads(tmp_path: Path) -> None:
    empty = tmp_path / "models"
    with pytest.raises(ModelError, match="run `interviewer models install --model-dir"):
        HibariTTS(cache_dir=tmp_path / "c", model_dir=empty)
    with pytest.raises(UserError, match="unknown voice 'kokoro'"):
        build_tts(make_settings(tmp_path), voice="kokoro")

    # A fresh process, as a user would hit it: one line, at once, and hibari's own voice
    # cache (where its downloads would go) stays empty.
    hibari_home = tmp_path / "hibari-home"
    hibari_home.mkdir()
    env = {
        **os.environ,
        "INTERVIEWER_MODEL_DIR": str(empty),
        "INTERVIEWER_DATA_DIR": str(tmp_path / "data"),
        "HIBARI_HOME": str(hibari_home),
    }
    args = [INTERVIEWER, "say", "Hello.", "--out", str(tmp_path / "x.wav")]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and not (tmp_path / "x.wav").exists()
    assert proc.stderr.strip() == (
        f"model directory {empty} has no manifest.json: run `interviewer models install`"
    )
    assert list(hibari_home.iterdir()) == []


def test_a_tampered_voice_file_is_refused(tmp_path: Path, model_dir: Path) -> None:
    copy = tmp_path / "models"
    weights.install(copy, only={weights.VOICE_MODEL})
    onnx = weights.voice_model(copy)
    data = bytearray(onnx.read_bytes())
    data[1000] ^= 0xFF
    onnx.write_bytes(bytes(data))  # same size, new mtime: rehashed
    with pytest.raises(ModelError, match=r"hibari\.onnx is corrupt"):
        HibariTTS(cache_dir=tmp_path / "c", model_dir=copy)
    assert any(r.status == "corrupt" for r in weights.verify(copy) if r.component == "hibari")


@pytest.mark.slow
@pytest.mark.parametrize("chosen", ["espeak", None])
async def test_the_openings_voice_reaches_the_session(
    tmp_path: Path, model_dir: Path, chosen: str | None
) -> None:
    """An opening that chose espeak is interviewed in espeak although hibari is the default;
    one that chose nothing, in hibari: the session renders its lines, and the agent's audio is
    that voice's, sample for sample."""
    from interviewer.config import OPENING_VOICE_KEY, VOICES
    from interviewer.interview import InterviewFlow
    from interviewer.lifecycle import Interviews
    from interviewer.store.db import session_scope
    from interviewer.store.models import Interview, Opening
    from interviewer.store.storage import open_storage
    from interviewer.voice.io import WavAudioInput, WavAudioOutput, answers_wav
    from interviewer.voice.stack import VoiceStack
    from interviewer.voice.stt import WhisperSTT
    from interviewer.voice.vad import load_vad

    settings = make_settings(tmp_path, model_dir=model_dir)
    assert settings.voice == "hibari"
    seeded = seed_interview(settings)
    if chosen:
        with session_scope(seeded.engine) as s:
            opening = s.get(Opening, s.get(Interview, seeded.interview_id).opening_id)
            opening.settings = {**(opening.settings or {}), OPENING_VOICE_KEY: chosen}

    wav = tmp_path / "answers.wav"
    answers_wav([text for text, _ in FIXTURE_ANSWERS.values()], wav, gap_s=2.5)
    out = WavAudioOutput(tmp_path / "agent.wav", speed=6.0)
    stack = VoiceStack(settings, vad=load_vad(0.3), stt=WhisperSTT(model="tiny.en"))
    interviews = Interviews(seeded.engine, open_storage(settings), stack)
    prepared = await interviews.prepare(seeded.interview_id)
    assert prepared.voice == chosen
    report = await interviews.run(
        prepared, audio_input=WavAudioInput(wav, fast=True), audio_output=out
    )
    await out.aclose()
    assert report.completed

    prompts = InterviewFlow(prepared.bank).prompts()
    voice = chosen or "hibari"
    other_voice = next(v for v in VOICES if v != voice)
    heard, other = build_tts(settings, voice=voice), build_tts(settings, voice=other_voice)
    assert all(heard.cache_path(p).exists() for p in prompts)
    assert not any(other.cache_path(p).exists() for p in prompts)
    first = np.frombuffer(await heard.pcm(prompts[0]), dtype=np.int16)
    with wave.open(str(tmp_path / "agent.wav"), "rb") as w:
        agent = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        assert w.getframerate() == heard.sample_rate
    piece = first[len(first) // 4 : len(first) // 4 + heard.sample_rate // 2]
    window = agent[: len(first) + heard.sample_rate]
    found = [
        i
        for i in range(len(window) - len(piece))
        if np.array_equal(window[i : i + len(piece)], piece)
    ]
    assert found, f"{voice}'s first line is not what the session played"
