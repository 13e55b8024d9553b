#!/usr/bin/env python
"""Turn the human-graded short-answer sets in /work/shared/data/asag/ into the CSV that
`interviewer eval asag` reads (columns question, reference_answer, answer, human_score,
max_score, plus a few identifying extras that the eval ignores and --out keeps).

The data stays where it is (its licences: SAF is MIT / CC BY 4.0, SemEval-2013 is CC BY-SA 3.0);
write the CSV outside the repository, e.g. to /tmp:

    .venv/bin/python scripts/asag_to_csv.py saf --split test_unseen_questions -o /tmp/saf.csv
    .venv/bin/python scripts/asag_to_csv.py saf --split train -o /tmp/saf-train.csv
    .venv/bin/python scripts/asag_to_csv.py semeval --corpus scientsbank \
        --split test_unseen_questions -o /tmp/sciq.csv

SAF: ``human_score`` is the tutor's points, ``max_score`` the question's maximum (0.5-3.5).
SemEval-2013 Task 7: labels, not points: the 2-way label (correct = 1, incorrect = 0) against
``max_score`` 1, with the single BEST reference answer.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

DATA = Path("/work/shared/data/asag")
SAF = DATA / "saf_communication_networks_en" / "saf_en_v2.jsonl"
SEMEVAL = DATA / "semeval2013_task7_sra" / "sra_answers.jsonl"
SAF_SPLITS = ("train", "test_unseen_answers", "test_unseen_questions")
SEMEVAL_SPLITS = (*SAF_SPLITS, "test_unseen_domains")
COLUMNS = ["question", "reference_answer", "answer", "human_score", "max_score"]


def _records(path: Path) -> list[dict]:
    if not path.exists():
        sys.exit(f"{path}: not found; pass --data with the folder holding the asag data sets")
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def saf_rows(path: Path, split: str) -> list[dict]:
    return [
        {
            "question": r["question"],
            "reference_answer": r["reference_answer"],
            "answer": r["provided_answer"],
            "human_score": r["score"],
            "max_score": r["max_score"],
            "uid": r["uid"],
            "question_id": r["question_id"],
            "label": r["verification_feedback"],
        }
        for r in _records(path)
        if r["split"] == split
    ]


def semeval_rows(path: Path, split: str, corpus: str | None) -> list[dict]:
    return [
        {
            "question": r["question"],
            "reference_answer": r["reference_answer"],
            "answer": r["student_answer"],
            "human_score": r["label_2way_int"],
            "max_score": 1,
            "uid": r["uid"],
            "question_id": r["question_id"],
            "label": r["label_3way"],
        }
        for r in _records(path)
        if r["split"] == split and (corpus is None or r["corpus"] == corpus)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=("saf", "semeval"))
    parser.add_argument(
        "--split",
        default="test_unseen_questions",
        choices=SEMEVAL_SPLITS,
        help="default: test_unseen_questions (questions the scorer was never tuned on)",
    )
    parser.add_argument(
        "--corpus", choices=("beetle", "scientsbank"), help="semeval only; default: both"
    )
    parser.add_argument("--data", type=Path, default=DATA, help=f"default: {DATA}")
    parser.add_argument("-o", "--out", type=Path, help="CSV to write; default: stdout")
    args = parser.parse_args(argv)

    if args.dataset == "saf":
        if args.split not in SAF_SPLITS:
            parser.error(f"SAF has no split {args.split}; choose from {', '.join(SAF_SPLITS)}")
        if args.corpus:
            parser.error("--corpus is for semeval only")
        rows = saf_rows(args.data / SAF.relative_to(DATA), args.split)
    else:
        rows = semeval_rows(args.data / SEMEVAL.relative_to(DATA), args.split, args.corpus)
    if not rows:
        sys.exit(f"no rows for {args.dataset} split {args.split}")

    out = args.out.open("w", newline="", encoding="utf-8") if args.out else sys.stdout
    try:
        writer = csv.DictWriter(out, fieldnames=[*COLUMNS, "uid", "question_id", "label"])
        writer.writeheader()
        writer.writerows(rows)
    finally:
        if args.out:
            out.close()
    if args.out:
        questions = len({r["question_id"] for r in rows})
        print(f"{args.out}: {len(rows)} answers to {questions} questions", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
