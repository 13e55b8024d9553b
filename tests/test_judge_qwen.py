"""The real judge, Qwen2.5-1.5B, on a fixed sample of the shipped banks: each sampled question's
strong demo answer must outscore its weak one.

One question from each of the six banks, so that a judge broken for any bank's kind of question
fails here: bank k (in file order) gives its question at position (3k + 3) mod 8, six different
positions, two of them reviews of an AI's work. Each question is judged four times (its two
anchors, the strong and the weak answer): ~4-5 CPU minutes on one thread. The exhaustive check,
every question of every bank, is `bench/demo_order.py --levels strong weak` (~36 CPU minutes):
run it when the judge, its prompts or the banks change.

`make test` runs this beside the rest of the suite at the lowest CPU priority
(scripts/test.sh). One thread, because there it uses whichever core the other tests leave idle,
and a two-thread judge would stall whenever one of its threads waits for a core.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from interviewer.banks.check import load_bank
from interviewer.banks.model import bank_files
from interviewer.scoring.judge import Judge

BANKS = Path(__file__).resolve().parent.parent / "question_banks"

SAMPLE = (
    ("dermatology", "severe-drug-eruption"),
    ("investment-banking", "ai-ebitda-claims"),
    ("journalism", "verify-viral-video"),
    ("law", "inadvertent-privileged-email"),
    ("software-engineering", "review-ai-login-code"),
    ("video-editing", "log-to-rec709"),
)


def test_the_sample_is_one_question_per_bank_by_its_rule() -> None:
    """The sample follows the rule in the docstring, so a new or reordered bank is noticed."""
    banks = [load_bank(path) for path in bank_files(BANKS)]
    chosen = tuple(
        (bank.id, bank.questions[(3 * k + 3) % len(bank.questions)].id)
        for k, bank in enumerate(banks)
    )
    assert chosen == SAMPLE


@pytest.mark.slow
@pytest.mark.qwen_sample
def test_qwen_ranks_strong_above_weak_on_sampled_questions(model_dir: Path) -> None:
    judge = Judge("qwen2.5-1.5b", model_dir, threads=1).load()
    banks = {bank.id: bank for bank in map(load_bank, bank_files(BANKS))}
    failures = []
    for bank_id, question_id in SAMPLE:
        question = next(q for q in banks[bank_id].questions if q.id == question_id)
        demo = yaml.safe_load((BANKS / "demo_answers" / f"{bank_id}.yaml").read_text())
        answers = demo["answers"][question_id]
        strong = judge.score(question, answers["strong"]).score
        weak = judge.score(question, answers["weak"]).score
        if not strong > weak:
            failures.append(f"{bank_id}/{question_id}: strong {strong:.3f} <= weak {weak:.3f}")
    assert not failures, "\n".join(failures)
