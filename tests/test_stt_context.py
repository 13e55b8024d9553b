"""Whisper told the question and its field's words: right spellings, and no words put in the
applicant's mouth. Real tiny.en (both backends), speech from the neural voice hibari (a domain
sentence) and Debian's asterisk recordings (real human speech about something else entirely).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest
from hibari import SAMPLE_RATE, Hibari
from livekit import rtc

from interviewer.banks.check import load_bank
from interviewer.banks.model import Bank, bank_files
from interviewer.errors import ModelError
from interviewer.interview import Ask
from interviewer.voice.context import context_for, context_text, key_terms
from interviewer.voice.guards import echoes_prompt, looping
from interviewer.voice.stt import (
    SAMPLE_RATE as STT_RATE,
)
from interviewer.voice.stt import WhisperSTT, decode_file, prompting, transcribe_array
from interviewer.voice.tts import resample

ROOT = Path(__file__).resolve().parents[1]
BANKS = ROOT / "question_banks"
SOUNDS = Path("/usr/share/asterisk/sounds/en")
OFF_TOPIC = ["all-circuits-busy-now.wav", "agent-newlocation.wav", "conf-adminmenu.wav"]
BACKENDS = ["whisper", "faster-whisper"]
DOMAIN_SENTENCE = "The tumour depth is reported as the Breslow thickness."


@pytest.fixture(scope="module", autouse=True)
def tiny_en(model_dir: Path) -> None:
    from interviewer import weights

    try:
        weights.whisper_checkpoint("tiny.en", model_dir)
        weights.faster_whisper_dir("tiny.en", model_dir)
    except ModelError as err:
        pytest.fail(str(err), pytrace=False)
    missing = [name for name in OFF_TOPIC if not (SOUNDS / name).exists()]
    if missing:
        pytest.fail(f"asterisk recordings missing ({missing}): run `make test`", pytrace=False)


@pytest.fixture(scope="module")
def dermatology() -> Bank:
    return load_bank(BANKS / "dermatology.yaml")


@pytest.fixture(scope="module")
def spoken() -> np.ndarray:
    """The domain sentence read by hibari, as mono 16 kHz int16."""
    audio = np.clip(np.asarray(Hibari()(DOMAIN_SENTENCE), dtype=np.float32), -1, 1)
    return resample((audio * 32767).astype(np.int16), SAMPLE_RATE, STT_RATE)


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def test_key_terms_are_the_fields_words(dermatology: Bank) -> None:
    terms = key_terms(dermatology.question("changing-pigmented-lesion"))
    assert {"Breslow", "ABCDE", "dermoscopy"} <= set(terms)
    assert not {"the", "and", "Border", "Colour"} & set(terms)  # whisper knows everyday words
    ib = load_bank(BANKS / "investment-banking.yaml")
    assert {"EBITDA", "WACC"} <= set(key_terms(ib.question("dcf-build")))


def test_context_is_glossary_then_question(dermatology: Bank) -> None:
    q = dermatology.question("changing-pigmented-lesion")
    ask = Ask(q.id, 0, 0, q.prompt, 120, 90)
    text = context_for(dermatology, ask)
    assert text is not None and text.startswith("Glossary: ") and text.endswith(q.prompt.strip())
    practice = Ask("practice", -1, 0, "Tell me about your role.", 60, 45)
    assert context_for(dermatology, practice) == "Tell me about your role."


@pytest.mark.parametrize("backend", BACKENDS)
def test_prompt_spells_the_field_word(backend: str, spoken: np.ndarray, dermatology: Bank) -> None:
    q = dermatology.question("changing-pigmented-lesion")
    plain = transcribe_array(spoken, backend=backend)
    prompted = transcribe_array(
        spoken, backend=backend, prompt=context_text(q.prompt, key_terms(q))
    )
    assert "breslow" not in words(plain.text), plain.text  # "breast-low" without the context
    assert "breslow" in words(prompted.text), prompted.text
    assert {"tumor", "depth", "thickness"} <= words(prompted.text)
    assert prompted.words and prompted.words[-1].end <= prompted.duration


def test_no_key_term_gained_by_off_topic_speech() -> None:
    """Every shipped bank's questions, each with its context, on real speech about something
    else: the transcript holds no word of the glossary that the plain transcript does not."""
    clips = {name: decode_file(SOUNDS / name) for name in OFF_TOPIC}
    plain = {
        name: words(transcribe_array(a, backend="faster-whisper").text) for name, a in clips.items()
    }
    checked = 0
    for path in bank_files(BANKS):
        bank = load_bank(path)
        for q in bank.questions[:2]:
            terms = key_terms(q)
            glossary = set().union(*(words(t) for t in terms)) if terms else set()
            prompt = context_text(q.prompt, terms)
            for name, audio in clips.items():
                heard = words(transcribe_array(audio, backend="faster-whisper", prompt=prompt).text)
                gained = (heard - plain[name]) & glossary
                assert not gained, (bank.id, q.id, name, gained)
                checked += 1
    assert checked == 2 * 3 * len(bank_files(BANKS))


@pytest.mark.parametrize("backend", BACKENDS)
def test_near_silence_gets_no_prompt(backend: str, dermatology: Bank) -> None:
    q = dermatology.question("changing-pigmented-lesion")
    hiss = np.random.default_rng(0).normal(0, 0.002, 3 * STT_RATE).astype(np.float32)
    t = transcribe_array(hiss, backend=backend, prompt=context_text(q.prompt, key_terms(q)))
    assert not words(t.text) & {w.lower() for w in key_terms(q)}, t.text
    assert not echoes_prompt(t.text, q.prompt), t.text


def test_echo_and_loop_checks() -> None:
    prompt = "Glossary: Breslow, ABCDE. Walk me through how you assess it."
    assert echoes_prompt("walk me through how you", prompt)
    assert not echoes_prompt("I would walk you through it", prompt)
    assert looping("and the other, " * 20)
    assert not looping(DOMAIN_SENTENCE * 2)


def test_plugin_reads_the_context_of_its_task(spoken: np.ndarray, dermatology: Bank) -> None:
    """The livekit plugin path capture uses: ``prompting`` around ``recognize``, and two answers
    transcribed at once each keep their own context."""
    q = dermatology.question("changing-pigmented-lesion")
    prompt = context_text(q.prompt, key_terms(q))
    frame = rtc.AudioFrame(spoken.tobytes(), STT_RATE, 1, len(spoken))
    engine = WhisperSTT(backend="faster-whisper", model="tiny.en")

    async def one(context: str | None) -> str:
        with prompting(context):
            event = await engine.recognize(buffer=frame)
        return event.alternatives[0].text

    async def both() -> list[str]:
        return await asyncio.gather(one(prompt), one(None))

    with_context, without = asyncio.run(both())
    assert "breslow" in words(with_context), with_context
    assert "breslow" not in words(without), without
