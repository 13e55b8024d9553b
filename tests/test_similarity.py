"""The similarity beside the judge (issue 19): off-topic answers score zero on every shipped
question, on-topic demo answers are never capped, and the blend keeps the judge's evidence.

Off-topic answers are real sentences about nothing the banks ask: the reference texts of
Debian's asterisk recordings (phone-system prompts, as the voice tests use) and audiobook
sentences (public-domain novels; "He could wait no longer." is the one that earned 29 of 100
on the insider-information question in a browser trial). Embeddings are the real
all-MiniLM-L6-v2; the slow test runs the real Qwen judge.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import yaml

from interviewer.banks.check import load_bank
from interviewer.banks.model import Bank, bank_files
from interviewer.scoring import similarity as sim
from interviewer.scoring.evidence import EvidenceFinder, split_sentences
from interviewer.scoring.judge import NULL_ANSWER, Judge

BANKS = Path(__file__).resolve().parent.parent / "question_banks"
ASTERISK_TEXTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
AUDIOBOOK = [
    "He could wait no longer.",
    "It is a truth universally acknowledged, that a single man in possession of a good "
    "fortune, must be in want of a wife.",
    "The rain had stopped by the time they reached the village, and the lamps were being lit.",
    "She folded the letter twice and put it away in the drawer with the others.",
    "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money "
    "in my purse, I thought I would sail about a little and see the watery part of the world.",
    "Alice was beginning to get very tired of sitting by her sister on the bank, and of having "
    "nothing to do.",
]


def _asterisk_prompts() -> list[str]:
    if not ASTERISK_TEXTS.exists():
        pytest.fail(f"{ASTERISK_TEXTS} missing: run `make test` (apt-get install them)")
    with gzip.open(ASTERISK_TEXTS, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    texts = [line.split(": ", 1)[1] for line in lines if ": " in line and not line.startswith(";")]
    return [t for t in texts if len(t.split()) >= 6 and "[" not in t]


def off_topic_answers() -> list[str]:
    """A fixed sample: three answers of three asterisk prompts each, and audiobook answers of
    one, two and all of the sentences."""
    prompts = _asterisk_prompts()
    rng = np.random.default_rng(0)
    picked = [" ".join(rng.choice(prompts, 3, replace=False)) for _ in range(3)]
    return [*picked, AUDIOBOOK[0], " ".join(AUDIOBOOK[1:3]), " ".join(AUDIOBOOK)]


def banks() -> list[Bank]:
    return [load_bank(p) for p in bank_files(BANKS)]


def demo_answers(bank: Bank) -> dict[str, dict[str, str]]:
    return yaml.safe_load((BANKS / "demo_answers" / f"{bank.id}.yaml").read_text())["answers"]


@pytest.fixture(scope="module")
def finder(model_dir: Path) -> EvidenceFinder:
    return EvidenceFinder(model_dir).load()


@pytest.fixture(scope="module")
def embed(finder: EvidenceFinder) -> sim.Embed:
    """The real MiniLM, each distinct text embedded once: the sweep below repeats the same
    off-topic sentences and question texts hundreds of times (embedding them together in one
    batch gives the same vectors up to float rounding)."""
    cached = sim.remembered(finder.embed)
    texts = [t for bank in banks() for q in bank.questions for t in sim.topic_texts(q)]
    for bank in banks():
        for levels in demo_answers(bank).values():
            for answer in levels.values():
                texts += [answer, *(s.text for s in split_sentences(answer))]
    for answer in off_topic_answers():
        texts += [answer, *(s.text for s in split_sentences(answer))]
    cached([*texts, NULL_ANSWER])  # one batch for the whole module
    return cached


def test_off_topic_answers_score_zero_on_every_shipped_question(embed: sim.Embed) -> None:
    answers = off_topic_answers()
    over = []
    for bank in banks():
        for question in bank.questions:
            for answer in answers:
                s = sim.measure(embed, question, answer)
                # Whatever the judge says (even full marks), the question stays under 5 of 100.
                if sim.blend(1.0, s) >= 0.05:
                    over.append((bank.id, question.id, answer[:40], round(s.relevance, 3)))
    assert not over, over


def test_demo_answers_are_never_capped(embed: sim.Embed) -> None:
    """The relevance check must not push real answers down: every strong, average and weak demo
    answer is on topic (cap 1), so the judge's strong > weak order (bench/demo_order.py) holds."""
    capped = []
    for bank in banks():
        demo = demo_answers(bank)
        for question in bank.questions:
            for level, answer in demo[question.id].items():
                s = sim.measure(embed, question, answer)
                if s.cap < 1:
                    capped.append((bank.id, question.id, level, round(s.relevance, 3)))
    assert not capped, capped


def test_similarity_orders_strong_demo_answers_above_weak(embed: sim.Embed) -> None:
    """With the judge already ordering strong > weak on all 48 questions, a blend with a
    similarity that orders them the same way keeps that order."""
    reversed_ = []
    for bank in banks():
        demo = demo_answers(bank)
        for question in bank.questions:
            strong = sim.measure(embed, question, demo[question.id]["strong"]).share
            weak = sim.measure(embed, question, demo[question.id]["weak"]).share
            if not strong >= weak:
                reversed_.append((bank.id, question.id, round(strong, 3), round(weak, 3)))
    assert not reversed_, reversed_


def test_similarity_share_runs_from_non_answer_to_reference(embed: sim.Embed) -> None:
    question = banks()[0].questions[0]
    reference = sim.measure(embed, question, question.reference_answer)
    assert reference.share == 1.0 and reference.cap == 1.0
    null = sim.measure(embed, question, NULL_ANSWER)
    assert null.share == 0.0


@pytest.mark.slow
def test_real_judge_scores_off_topic_speech_zero_and_keeps_its_evidence(
    model_dir: Path, finder: EvidenceFinder
) -> None:
    """The real scorer (Qwen judge, MiniLM): one question of each bank, and the insider
    question with the sentence that scored 29 of 100 in the browser."""
    judge = Judge(model_dir=model_dir).load()
    cases = [(bank.questions[0], AUDIOBOOK[0] + " " + AUDIOBOOK[2]) for bank in banks()]
    ib = next(b for b in banks() if b.id == "investment-banking")
    insider = next(q for q in ib.questions if "insider" in q.id or "mnpi" in q.id)
    cases.append((insider, AUDIOBOOK[0]))
    for question, answer in cases:
        judged = sim.score(judge, finder.embed, question, answer)
        assert judged.score < 0.05, (question.id, judged.score)
        assert all(c.probability < 0.05 for c in judged.criteria), question.id
    strong = demo_answers(ib)[ib.questions[0].id]["strong"]
    alone = judge.score(ib.questions[0], strong)
    blended = sim.score(judge, finder.embed, ib.questions[0], strong)
    assert blended.criteria == alone.criteria  # levels stay the judge's
    assert blended.score > 0.5
