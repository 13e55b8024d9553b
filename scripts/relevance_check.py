#!/usr/bin/env python
"""The relevance cap (``scoring/similarity.py``) on texts its thresholds were never set on.

    .venv/bin/python scripts/relevance_check.py [--prompts 40] [--per-set 300]

Two questions, by answer length in words:

- **Off-topic answers that escape the cap**: ``--prompts`` seeded single asterisk prompts
  (Debian's phone-system recordings' texts; seed 1, so not the test's sample) given as the
  answer to each of the 48 shipped questions: how many reach the floor (partly capped) and how
  many pass it (not capped at all).
- **Credited answers the cap hits**: ``--per-set`` seeded answers of each train split (SAF,
  SciEntsBank, Beetle; CSVs from ``scripts/asag_to_csv.py`` in /tmp), how many the humans gave
  credit to fall under the floor, and under lower floors one might use for short answers.
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np

from interviewer.banks.check import load_bank
from interviewer.banks.model import bank_files
from interviewer.scoring import similarity as sim
from interviewer.scoring.asag import question_from_reference
from interviewer.scoring.asag_data import read_csv, sample
from interviewer.scoring.evidence import EvidenceFinder

ROOT = Path(__file__).resolve().parents[1]
ASTERISK = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
BINS = [(0, 5), (5, 8), (8, 12), (12, 20), (20, 10_000)]


def embedder() -> sim.Embed:
    return sim.remembered(EvidenceFinder().load().embed)


def off_topic(embed: sim.Embed, prompts: int) -> None:
    with gzip.open(ASTERISK, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    texts = [line.split(": ", 1)[1] for line in lines if ": " in line and not line.startswith(";")]
    texts = [t for t in texts if len(t.split()) >= 3 and "[" not in t]
    rng = np.random.default_rng(1)
    picked = [texts[i] for i in rng.choice(len(texts), prompts, replace=False)]
    questions = [q for p in bank_files(ROOT / "question_banks") for q in load_bank(p).questions]
    rows = [
        (len(t.split()), sim.measure(embed, q, t).relevance, t, q.id)
        for t in picked
        for q in questions
    ]
    print(f"off-topic: {prompts} asterisk prompts x {len(questions)} shipped questions")
    print(
        f"| words | pairs | relevance p95 | max | >= floor {sim.RELEVANCE_FLOOR} | >= full "
        f"{sim.RELEVANCE_FULL} (uncapped) |"
    )
    print("|---|---|---|---|---|---|")
    for lo, hi in BINS:
        rel = np.array([r for w, r, _, _ in rows if lo <= w < hi])
        if rel.size:
            print(
                f"| {lo}-{hi - 1 if hi < 10_000 else ''} | {rel.size} | "
                f"{np.percentile(rel, 95):.3f} | {rel.max():.3f} | "
                f"{(rel >= sim.RELEVANCE_FLOOR).sum()} | {(rel >= sim.RELEVANCE_FULL).sum()} |"
            )
    print("highest:")
    for _, r, text, qid in sorted(rows, key=lambda x: -x[1])[:5]:
        print(f"  {r:.3f} {qid}: {text[:80]}")


def credited(embed: sim.Embed, per_set: int) -> None:
    floors = [sim.RELEVANCE_FLOOR, 0.22, 0.18]
    print(f"\ncredited answers under the floor ({per_set} seeded answers per train split)")
    print(
        "| set | words | answers | credited | "
        + " | ".join(f"credited < {f}" for f in floors)
        + " |"
    )
    print("|---|---|---|---|" + "---|" * len(floors))
    for name in ("saf_train", "scientsbank_train", "beetle_train"):
        rows = sample(read_csv(Path(f"/tmp/{name}.csv")), per_set, 0)
        measured = [
            (
                len(r.answer.split()),
                sim.measure(
                    embed,
                    question_from_reference(r.question, r.reference_answer, r.max_score),
                    r.answer,
                ).relevance,
                r.human_normalized > 0,
            )
            for r in rows
        ]
        for lo, hi in BINS:
            got = [(rel, ok) for w, rel, ok in measured if lo <= w < hi]
            if not got:
                continue
            under = [sum(1 for rel, ok in got if ok and rel < f) for f in floors]
            print(
                f"| {name} | {lo}-{hi - 1 if hi < 10_000 else ''} | {len(got)} | "
                f"{sum(ok for _, ok in got)} | " + " | ".join(map(str, under)) + " |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=40)
    parser.add_argument("--per-set", type=int, default=300)
    args = parser.parse_args()
    embed = embedder()
    off_topic(embed, args.prompts)
    credited(embed, args.per_set)


if __name__ == "__main__":
    main()
