"""How sure is a lead in `interviewer eval asag`? A bootstrap over the answers of its --out
file: the judge's and the embedding baseline's Pearson r and QWK on each resample, and the
90% interval of the difference (judge minus baseline).

    interviewer eval asag saf_uq.csv --limit 120 --out scored.csv
    .venv/bin/python bench/asag_interval.py scored.csv [--resamples 2000] [--pass-at 0.5]

A few hundred answers from a handful of questions give wide intervals: an interval that
contains 0 means the sample does not say which scorer agrees better with the graders.
"""

from __future__ import annotations

import argparse
import csv

import numpy as np

from interviewer.scoring import asag


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scored_csv", help="the --out file of `interviewer eval asag`")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pass-at",
        type=float,
        default=None,
        help="also read the judge as pass/fail at this share (for pass/fail human grades)",
    )
    args = parser.parse_args()
    with open(args.scored_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    scale = np.array([float(r["max_score"]) for r in rows])
    human = np.array([float(r["human_score"]) for r in rows]) / scale
    scorers = {
        "judge": np.array([float(r["predicted"]) for r in rows]) / scale,
        "baseline": np.array([float(r["predicted_baseline"]) for r in rows]) / scale,
    }
    questions = len({r["question"] for r in rows})
    print(f"{len(rows)} answers to {questions} questions, {args.resamples} resamples")
    rng = np.random.default_rng(args.seed)
    draws: dict[str, list[tuple[float, float]]] = {name: [] for name in scorers}
    for _ in range(args.resamples):
        pick = rng.integers(0, len(rows), len(rows))
        for name, predicted in scorers.items():
            m = asag.metrics(predicted[pick], human[pick])
            draws[name].append((m.pearson, m.qwk))
    judge, baseline = np.array(draws["judge"]), np.array(draws["baseline"])
    whole = {name: asag.metrics(predicted, human) for name, predicted in scorers.items()}
    for column, metric in enumerate(("Pearson r", "QWK")):
        values = {n: (m.pearson, m.qwk)[column] for n, m in whole.items()}
        low, mid, high = np.percentile(judge[:, column] - baseline[:, column], [5, 50, 95])
        print(
            f"{metric:9}  judge {values['judge']:.3f}  baseline {values['baseline']:.3f}  "
            f"difference {mid:+.3f} (90%: {low:+.3f} .. {high:+.3f})"
        )
    if args.pass_at is not None:
        pass_fail(human >= 0.5, scorers["judge"] >= args.pass_at, rng, args.resamples)


def pass_fail(human: np.ndarray, judge: np.ndarray, rng: np.random.Generator, n: int) -> None:
    """Accuracy, macro-F1 and Cohen's kappa of the judge's pass/fail against the graders'."""
    from sklearn.metrics import cohen_kappa_score, f1_score

    kappas = []
    for _ in range(n):
        pick = rng.integers(0, len(human), len(human))
        kappas.append(cohen_kappa_score(human[pick], judge[pick]))
    low, high = np.percentile(kappas, [5, 95])
    majority = max(human.mean(), 1 - human.mean())
    print(
        f"pass/fail  accuracy {np.mean(human == judge):.3f} (majority label {majority:.3f})  "
        f"macro-F1 {f1_score(human, judge, average='macro'):.3f}  "
        f"Cohen's kappa {cohen_kappa_score(human, judge):.3f} (90%: {low:.2f} .. {high:.2f})"
    )


if __name__ == "__main__":
    main()
