"""Do the product's scores put the shipped demo answers in their intended order?

The score is the service's: the judge blended with the answer's similarity to the reference
and capped when off topic (``scoring.similarity``); ``--judge-only`` gives the judge's alone.

The exhaustive check of the judge on the shipped banks: every question of every bank, where the
test suite judges only a sample (tests/test_judge_qwen.py, one question per bank). Run it when
the judge, its prompts or the banks change. Every shipped bank has a strong, an average and a
weak demo answer to each question (``question_banks/demo_answers``), which ``interviewer demo``
speaks as three applicants whom recruiters then see ranked. This prints, per bank, the
interview scores of the levels asked for (the bank's weighted mean, as
``scoring.service.update_interview_score`` computes it) and every question where the order
strong > average > weak breaks:

    .venv/bin/python bench/demo_order.py [--model qwen2.5-1.5b] [--bank journalism ...]
                                         [--levels strong weak] [--dtype bfloat16] [--judge-only]

It exits non-zero if any question's strong answer does not outscore its weak one (the check the
test suite makes on its sample; an average answer out of place is printed, not an error), if
fewer banks or questions than shipped (6, 48) are found, or if none matched ``--bank``.
``--levels strong weak`` is that check alone, ~36 CPU minutes in float32 (~192 judgements: two
anchors and two answers per question); ``--dtype`` tries the judge in another dtype than this
machine's choice (``interviewer/scoring/dtype.py``).

About 240 judgements for the six banks with all three levels (two anchors and three answers per
question): 42 min on two nearly idle cores (2026-12-07).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import yaml

from interviewer.banks.check import load_bank
from interviewer.banks.model import bank_files
from interviewer.scoring import similarity
from interviewer.scoring.evidence import EvidenceFinder
from interviewer.scoring.judge import Judge

BANKS = Path(__file__).resolve().parent.parent / "question_banks"
LEVELS = ("strong", "average", "weak")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="qwen2.5-1.5b")
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--bank", nargs="*", default=None, help="bank ids (default: all)")
    parser.add_argument("--levels", nargs="+", choices=LEVELS, default=list(LEVELS))
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default=None)
    parser.add_argument(
        "--judge-only", action="store_true", help="the judge's scores without the similarity"
    )
    args = parser.parse_args()
    levels = [level for level in LEVELS if level in args.levels]  # best first
    banks = [load_bank(path) for path in bank_files(BANKS)]
    if not args.bank and (len(banks) < 6 or sum(len(b.questions) for b in banks) < 48):
        print("fewer than the 6 shipped banks' 48 questions were found", file=sys.stderr)
        return 2
    banks = [b for b in banks if not args.bank or b.id in args.bank]
    if not banks:
        print(f"no bank matched {args.bank}", file=sys.stderr)
        return 2
    judge = Judge(args.model, args.model_dir, dtype=args.dtype).load()
    # The product's score: the judge blended with the similarity, under the relevance cap.
    embed = None if args.judge_only else EvidenceFinder(args.model_dir).load().embed
    started = time.perf_counter()
    breaks, questions, ordered_banks = 0, 0, 0
    weak_wins: list[str] = []  # questions where strong > weak breaks: the check that fails
    for bank in banks:
        demo = yaml.safe_load((BANKS / "demo_answers" / f"{bank.id}.yaml").read_text())["answers"]
        totals = dict.fromkeys(levels, 0.0)
        weights = 0.0
        for question in bank.questions:
            scores = {
                level: similarity.score(judge, embed, question, demo[question.id][level]).score
                for level in levels
            }
            weight = float(getattr(question, "weight", 1.0))  # as the service weighs
            weights += weight
            for level in levels:
                totals[level] += weight * scores[level]
            questions += 1
            if "strong" in scores and "weak" in scores and not scores["strong"] > scores["weak"]:
                weak_wins.append(f"{bank.id}/{question.id}")
            if not _ordered(scores, levels):
                breaks += 1
                shown = "  ".join(f"{level} {scores[level]:.3f}" for level in levels)
                print(f"  {bank.id}/{question.id}: {shown}", flush=True)
        interview = {level: totals[level] / weights for level in levels}
        ordered = _ordered(interview, levels)
        ordered_banks += ordered
        shown = "  ".join(f"{level} {interview[level]:.3f}" for level in levels)
        print(f"{bank.id:<24} interview {shown}  {'ordered' if ordered else 'NOT ORDERED'}")
    print(
        f"\n{ordered_banks}/{len(banks)} banks ordered {' > '.join(levels)} by interview "
        f"score; {questions - breaks}/{questions} questions ordered; "
        f"{time.perf_counter() - started:.0f} s ({judge.model_name}, {judge.dtype}, "
        f"{judge.threads} threads)"
    )
    if weak_wins:
        print(f"FAILED: strong <= weak on {len(weak_wins)} questions: {', '.join(weak_wins)}")
        return 1
    return 0


def _ordered(scores: dict[str, float], levels: list[str]) -> bool:
    return all(scores[a] > scores[b] for a, b in itertools.pairwise(levels))


if __name__ == "__main__":
    sys.exit(main())
