"""Tune the judge's prompts and score arithmetic on a human-graded train split.

Running the 1.5B model is the slow part (seconds per answer on two cores); combining its
check probabilities into a score is instant. So tuning is two steps:

    # 1. run every check variant once per answer (and per question on the two anchors), and
    #    the embedding cosines, into a JSONL file (resumable: rows already there are skipped)
    python scripts/asag_tune.py collect saf_train.csv --per-question 4 --out train-checks.jsonl
    # 2. try the combinations on those numbers; the best by the train split's mean of Pearson r
    #    and QWK, then the same settings on another file's numbers (e.g. the unseen questions)
    python scripts/asag_tune.py fit train-checks.jsonl --test test-checks.jsonl

The judge computes in this machine's dtype (``interviewer/scoring/dtype.py``) unless
``--dtype`` says which; the tuning so far was done in float32. Every line records its dtype
(files without one were collected in float32), and a file is never resumed in another dtype.

The check variants are the judge's own (``checks_for``) plus alternatives worth a try: key
points in the first version's literal wording ("does the answer say this: ..."; the shipped
"perhaps in other words" won), an overall "is the answer correct" check (the judge's own
reference check, "does it say what this reference answer says", also joins or leaves the
score at a weight of its own), and the level descriptors of criteria with key points (which the
judge stopped asking about once the tuning gave them no share); ``--alternatives`` picks which
of them to collect (``--alternatives ''``: the judge's own checks only). Tried and dropped
(2026-12-07, commit 689d432): the reference check as a rating from 1 to 5, read as the expected
digit; it lost on the train split at every weight. What step 2 picks is written into
``interviewer/scoring/judge.py`` by hand, with the figures, so the product and ``interviewer
eval asag`` score the same way.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from interviewer.banks.model import Question
from interviewer.scoring import asag
from interviewer.scoring.judge import (
    MIN_SPREAD,
    NULL_ANSWER,
    Check,
    Judge,
    checks_for,
    level_checks,
)

ALTERNATIVES = ("literal", "levels", "overall")


def variant_checks(question: Question, alternatives: Sequence[str] = ALTERNATIVES) -> list[Check]:
    """The judge's checks, then the alternatives (kinds prefixed ``alt-``)."""
    checks = checks_for(question)
    for criterion in question.rubric.criteria:
        for point in criterion.key_points if "literal" in alternatives else ():
            checks.append(
                Check(
                    "alt-key_point",
                    point.id,
                    criterion.id,
                    # the first version's literal wording, kept to compare against
                    f'Does the applicant\'s answer say this: "{point.text}"? Answer Yes or No.',
                )
            )
        # the judge reads descriptors only for criteria without key points
        if criterion.key_points and "levels" in alternatives:
            checks.extend(level_checks(criterion, "alt-level"))
    if "overall" in alternatives:
        checks.append(
            Check(
                "alt-overall",
                "correct",
                None,
                "Is the applicant's answer to the interview question correct? Answer Yes or No.",
            )
        )
    return checks


def stratified(rows: list[asag.GradedAnswer], per_question: int, seed: int) -> list:
    """``per_question`` answers of every question, seeded, spread over the human scores."""
    by_question: dict[str, list[asag.GradedAnswer]] = defaultdict(list)
    for row in rows:
        by_question[row.question].append(row)
    rng = np.random.default_rng(seed)
    picked = []
    for question in sorted(by_question):
        group = sorted(by_question[question], key=lambda r: (r.human_normalized, r.line))
        if len(group) <= per_question:
            picked.extend(group)
            continue
        # one from each of per_question equal slices of the score-sorted answers
        edges = np.linspace(0, len(group), per_question + 1).astype(int)
        picked.extend(group[int(rng.integers(a, b))] for a, b in itertools.pairwise(edges))
    return picked


def collect(args: argparse.Namespace) -> None:
    rows = asag.read_csv(args.csv)
    rows = stratified(rows, args.per_question, args.seed) if args.per_question else rows
    rows = asag.sample(rows, args.limit, args.seed) if args.limit else rows
    out = Path(args.out)
    done = set()
    dtypes = set()
    if out.exists():
        for line in out.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            done.add((entry["kind"], entry.get("line"), entry["question"]))
            dtypes.add(entry.get("dtype", "float32"))
    judge = Judge("qwen2.5-1.5b", dtype=args.dtype)
    if dtypes - {judge.dtype}:
        sys.exit(
            f"{out} was collected in {', '.join(sorted(dtypes))} and the judge would compute in "
            f"{judge.dtype}: pass --dtype {min(dtypes)} to resume it, or another --out"
        )
    judge.load()
    embed = asag.embedding_scorer()
    print(f"{len(rows)} answers; model loaded in {judge.load_seconds:.0f} s", file=sys.stderr)
    for n, row in enumerate(rows, 1):
        question = asag.question_from_reference(row.question, row.reference_answer, row.max_score)
        checks = variant_checks(question, args.alternatives.split(",") if args.alternatives else ())
        with out.open("a") as f:
            if ("anchors", None, question.id) not in done:
                null, _, _ = judge.run_checks(question, NULL_ANSWER, checks)
                ref, _, _ = judge.run_checks(question, question.reference_answer, checks)
                cos_null = embed([_as_row(row, NULL_ANSWER)])[0]
                entry = {
                    "kind": "anchors",
                    "dtype": judge.dtype,
                    "question": question.id,
                    "null": _probabilities(null),
                    "reference": _probabilities(ref),
                    "cos_null": cos_null,
                }
                f.write(json.dumps(entry) + "\n")
                done.add(("anchors", None, question.id))
            if ("answer", row.line, question.id) in done:
                continue
            results, _, _ = judge.run_checks(question, row.answer, checks)
            entry = {
                "kind": "answer",
                "dtype": judge.dtype,
                "line": row.line,
                "question": question.id,
                "question_id": row.columns.get("question_id"),
                "human": row.human_normalized,
                "checks": _probabilities(results),
                "cos": embed([row])[0],
            }
            f.write(json.dumps(entry) + "\n")
        print(f"{n}/{len(rows)}", file=sys.stderr, flush=True)


def _as_row(row: asag.GradedAnswer, answer: str) -> asag.GradedAnswer:
    from dataclasses import replace

    return replace(row, answer=answer)


def _probabilities(results: list) -> dict[str, float]:
    return {f"{r.check.kind}|{r.check.criterion_id}|{r.check.id}": r.probability for r in results}


# --- step 2: combinations ---------------------------------------------------------------------


def load(path: Path) -> list[dict]:
    """The answers of one collected file, each with its question's anchors and its dtype."""
    anchors, answers = {}, []
    for line in Path(path).read_text().splitlines():
        entry = json.loads(line)
        entry.setdefault("dtype", "float32")  # files from before the dtype was recorded
        if entry["kind"] == "anchors":
            anchors[entry["question"]] = entry
        else:
            answers.append(entry)
    for entry in answers:
        entry["anchors"] = anchors[entry["question"]]
    dtypes = {e["dtype"] for e in [*answers, *anchors.values()]}
    if len(dtypes) > 1:
        sys.exit(f"{path} mixes checks computed in {' and '.join(sorted(dtypes))}")
    return answers


def _logit(p: float) -> float:
    p = min(1 - 1e-6, max(1e-6, p))
    return math.log(p / (1 - p))


def reading(checks: dict[str, float], kind: str, space: str, aggregate: str) -> float:
    values = [v for k, v in checks.items() if k.startswith(kind + "|")]
    if space == "logit":
        values = [_logit(v) for v in values]
    if aggregate == "mean":
        return float(np.mean(values))
    values = sorted(values)
    return float(np.mean(values[len(values) // 2 :]))  # the better half


def descriptor_share(checks: dict[str, float]) -> float:
    fits = {
        int(k.rsplit("|", 1)[1]): v
        for k, v in checks.items()
        if k.startswith(("level|", "alt-level|"))  # files collected before 2026-11-26: "level"
    }
    low, high = min(fits), max(fits)
    total = sum(fits.values())
    return (
        0.0
        if total <= 0 or high == low
        else (sum(s * p for s, p in fits.items()) / total - low) / (high - low)
    )


def anchored(value: float, null: float, ref: float, top: float) -> float:
    if ref - null < MIN_SPREAD:
        return float(np.clip(value, 0, 1))
    return float(np.clip((value - null) / ((ref - null) * top), 0, 1))


def score(entry: dict, p: dict) -> float:
    a = entry["anchors"]
    parts, weights = [], []
    if p["kp_w"]:
        kind, space, agg = p["kp"], p["space"], p["agg"]
        value = reading(entry["checks"], kind, space, agg)
        if p["anchor"]:
            null = reading(a["null"], kind, space, agg)
            ref = reading(a["reference"], kind, space, agg)
            value = anchored(value, null, ref, p["top"])
        elif space == "logit":
            value = 1 / (1 + math.exp(-value))
        parts.append(value)
        weights.append(p["kp_w"])
    if p["desc_w"]:
        value = descriptor_share(entry["checks"])
        if p["anchor"]:
            value = anchored(
                value, descriptor_share(a["null"]), descriptor_share(a["reference"]), p["top"]
            )
        parts.append(value)
        weights.append(p["desc_w"])
    if p["overall_w"]:
        key = _overall_key(entry["checks"], p["overall"])
        value = entry["checks"][key]
        if p["anchor"]:
            value = anchored(value, a["null"][key], a["reference"][key], p["top"])
        parts.append(value)
        weights.append(p["overall_w"])
    if p["cos_w"]:
        parts.append(anchored(entry["cos"], a["cos_null"], 1.0, p["top"]))
        weights.append(p["cos_w"])
    return float(np.dot(parts, weights) / sum(weights))


def grid() -> list[dict]:
    options = []
    for kp, space, agg, anchor, top in itertools.product(
        ("key_point", "alt-key_point"),
        ("prob", "logit"),
        ("mean", "upper"),
        (True, False),
        (1.0, 0.85, 0.7, 0.6, 0.5),
    ):
        if not anchor and top != 1.0:
            continue
        for kp_w, desc_w, overall_w, cos_w in itertools.product(
            (0, 1), (0, 0.25, 0.5), (0, 0.25, 0.5), (0, 0.25, 0.5, 1)
        ):
            if kp_w + desc_w + overall_w + cos_w == 0:
                continue
            for overall in ("correct", "matches-reference") if overall_w else ("correct",):
                options.append(
                    dict(
                        kp=kp,
                        space=space,
                        agg=agg,
                        anchor=anchor,
                        top=top,
                        kp_w=kp_w,
                        desc_w=desc_w,
                        overall_w=overall_w,
                        overall=overall,
                        cos_w=cos_w,
                    )
                )
    return options


def _overall_key(checks: dict[str, float], overall: str) -> str:
    """ "matches-reference" is the judge's own reference check, an alternative in files
    collected before it joined the judge."""
    if overall == "matches-reference" and "reference|None|reference" in checks:
        return "reference|None|reference"
    return f"alt-overall|None|{overall}"


def _collected(p: dict, entry: dict) -> bool:
    """Files collected before a check was added, or without some alternatives, lack it: those
    settings are left out."""
    checks = entry["checks"]
    if p["kp_w"] and not any(k.startswith(p["kp"] + "|") for k in checks):
        return False
    if p["desc_w"] and not any(k.startswith(("level|", "alt-level|")) for k in checks):
        return False
    return not p["overall_w"] or _overall_key(checks, p["overall"]) in checks


def evaluate(entries: list[dict], p: dict) -> asag.Metrics:
    return asag.metrics([score(e, p) for e in entries], [e["human"] for e in entries])


def fit(args: argparse.Namespace) -> None:
    train = load(args.train)
    test = load(args.test) if args.test else []
    ranked = []
    for p in grid():
        if not _collected(p, train[0]):
            continue
        m = evaluate(train, p)
        ranked.append(((m.pearson + m.qwk) / 2, m, p))
    ranked.sort(key=lambda t: -t[0])
    # the judge as shipped (judge.py), and as first written (literal wording, every point,
    # full marks only at the reference, 0.25 from the descriptors)
    current = dict(
        kp="key_point", space="prob", agg="upper", anchor=True, top=0.6,
        kp_w=1, desc_w=0, overall_w=0.25, overall="matches-reference", cos_w=0,
    )  # fmt: skip
    first = dict(
        current, kp="alt-key_point", agg="mean", top=1.0, kp_w=0.75, desc_w=0.25, overall_w=0
    )
    baseline = dict(current, kp_w=0, desc_w=0, overall_w=0, cos_w=1, anchor=False, top=1.0)
    print(
        f"train: {len(train)} answers ({train[0]['dtype']}); test: {len(test)}"
        + (f" ({test[0]['dtype']})" if test else "")
    )
    fixed = [("judge.py", current), ("first judge", first), ("cosine only", baseline)]
    for label, p in [(label, p) for label, p in fixed if _collected(p, train[0])] + [
        (f"#{i + 1}", p) for i, (_, _, p) in enumerate(ranked[: args.top])
    ]:
        line = f"{label:14s} train {_figures(evaluate(train, p))}"
        if test:
            line += f" | test {_figures(evaluate(test, p))}"
        print(line, json.dumps(p))


def _figures(m: asag.Metrics) -> str:
    return f"r={m.pearson:.3f} rho={m.spearman:.3f} rmse={m.rmse:.3f} qwk={m.qwk:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    c = sub.add_parser("collect")
    c.add_argument("csv", type=Path)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--per-question", type=int, default=0)
    c.add_argument("--limit", type=int, default=0)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default=None,
        help="what the judge computes in (default: this machine's choice, as in the product)",
    )
    c.add_argument(
        "--alternatives",
        default=",".join(ALTERNATIVES),
        help=f"alternatives to the judge's checks to collect too, of {ALTERNATIVES}",
    )
    f = sub.add_parser("fit")
    f.add_argument("train", type=Path)
    f.add_argument("--test", type=Path)
    f.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    unknown = set(getattr(args, "alternatives", "").split(",")) - {"", *ALTERNATIVES}
    if unknown:
        parser.error(f"unknown --alternatives {sorted(unknown)}; choose from {ALTERNATIVES}")
    collect(args) if args.step == "collect" else fit(args)


if __name__ == "__main__":
    main()
