"""Content checks for the shipped question banks and their synthetic demo answers.

The schema (``interviewer/banks.py``) says what a bank *can* hold; these tests hold the banks in
``question_banks/`` to what the product needs: a sensible interview length, a demo answer of every
tier for every question (the demo and the scorer checks play them through espeak-ng and whisper),
and answers that read aloud cleanly. They run on every bank file, so a new bank is covered the
moment it lands.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from interviewer.banks.model import Bank, bank_files

BANKS_DIR = Path(__file__).resolve().parent.parent / "question_banks"
DEMO_DIR = BANKS_DIR / "demo_answers"
TIERS = ("strong", "average", "weak")
# espeak-ng reads digits with units and symbols badly ("24fps", "50%", "R128/A85"), and whisper
# then transcribes something else, so demo answers spell everything out.
UNSPEAKABLE = re.compile(r"[0-9%&/@#$+=*<>_|\\]")

BANK_PATHS = bank_files(BANKS_DIR) if BANKS_DIR.is_dir() else []


def _load_bank(path: Path) -> Bank:
    return Bank.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def _load_demo(bank: Bank) -> dict:
    path = DEMO_DIR / f"{bank.id}.yaml"
    assert path.is_file(), f"{bank.id}: no demo answers; add {path.relative_to(BANKS_DIR.parent)}"
    demo = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(demo, dict), f"{path.name}: expected a mapping"
    assert demo.get("bank_id") == bank.id, f"{path.name}: bank_id should be {bank.id!r}"
    return demo


def _words(text: str) -> int:
    return len(text.split())


@pytest.fixture(params=BANK_PATHS, ids=lambda p: p.stem)
def bank(request: pytest.FixtureRequest) -> Bank:
    return _load_bank(request.param)


def test_there_are_banks() -> None:
    assert BANK_PATHS, f"no bank files in {BANKS_DIR}"


def test_bank_ids_are_unique_and_match_file_names() -> None:
    ids = [_load_bank(path).id for path in BANK_PATHS]
    assert len(ids) == len(set(ids))
    for path, bank_id in zip(BANK_PATHS, ids, strict=True):
        assert path.stem == bank_id, f"{path.name}: id {bank_id!r} should match the file name"


def test_interview_length(bank: Bank) -> None:
    assert 6 <= len(bank.questions) <= 10, f"{bank.id}: {len(bank.questions)} questions"


def test_follow_up_triggers_are_key_points(bank: Bank) -> None:
    for question in bank.questions:
        known = question.rubric.key_point_ids
        for follow_up in question.follow_ups:
            assert follow_up.trigger in known, f"{bank.id}/{question.id}: {follow_up.trigger!r}"


def test_every_question_has_every_demo_tier(bank: Bank) -> None:
    demo = _load_demo(bank)
    answers = demo.get("answers") or {}
    question_ids = {q.id for q in bank.questions}
    assert not set(answers) - question_ids, f"{bank.id}: answers for unknown questions"
    for question_id in sorted(question_ids):
        tiers = answers.get(question_id)
        assert isinstance(tiers, dict), f"{bank.id}/{question_id}: no demo answers"
        for tier in TIERS:
            text = tiers.get(tier)
            assert isinstance(text, str) and text.strip(), f"{bank.id}/{question_id}: no {tier}"
    practice = demo.get("practice") or {}
    for tier in TIERS:
        assert isinstance(practice.get(tier), str) and practice[tier].strip(), (
            f"{bank.id}: no {tier} practice answer"
        )


def test_strong_answers_are_longer_than_weak(bank: Bank) -> None:
    demo = _load_demo(bank)
    for question_id, tiers in demo["answers"].items():
        assert _words(tiers["strong"]) > _words(tiers["weak"]), f"{bank.id}/{question_id}"


def test_demo_answers_read_aloud_cleanly(bank: Bank) -> None:
    demo = _load_demo(bank)
    groups = [*demo["answers"].items(), ("practice", demo["practice"])]
    for question_id, tiers in groups:
        for tier in TIERS:
            found = UNSPEAKABLE.findall(tiers[tier])
            assert not found, f"{bank.id}/{question_id}/{tier}: spell out {''.join(found)!r}"


def test_demo_files_belong_to_a_bank() -> None:
    ids = {_load_bank(path).id for path in BANK_PATHS}
    for path in sorted(DEMO_DIR.glob("*.yaml")) if DEMO_DIR.is_dir() else []:
        assert path.stem in ids, f"{path.name}: no bank with id {path.stem!r}"
