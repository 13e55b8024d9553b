#!/usr/bin/env python
"""Issue 19: the judge plus semantic similarity against human graders.

``judge`` runs the rubric judge over a sample of a graded CSV (``scripts/asag_to_csv.py``) and
keeps each answer's judgement (score, reference check, criterion shares) in
``<data_dir>/asag-judgements.jsonl``, keyed like ``interviewer eval asag``'s cache (judge code,
dtype, model, rubric, answer): each answer is judged once however often the figures are redone.
The judge takes seconds per answer on two cores, so run it early, in the background, niced:

    nice -n 10 .venv/bin/python scripts/asag_agree.py judge /tmp/saf_train.csv --per-question 4

``report`` (in ``interviewer.scoring.agreement`` terms) fits the combination on one sample and
reports it, with bootstrap intervals, on others; see docs/scoring.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from interviewer.config import get_settings
from interviewer.scoring import similarity as sim
from interviewer.scoring.asag import judge_fingerprint, question_from_reference
from interviewer.scoring.asag_data import GradedAnswer, read_csv, sample
from interviewer.scoring.asag_metrics import LinearMapping, metrics


def cache_path() -> Path:
    return get_settings().data_dir / "asag-judgements.jsonl"


def pick(
    rows: Sequence[GradedAnswer],
    limit: int | None,
    per_question: int | None,
    questions: int | None,
    seed: int,
) -> list[GradedAnswer]:
    """``limit`` rows seeded over the file (as ``interviewer eval asag --limit``), or
    ``per_question`` seeded rows of each of ``questions`` seeded questions (few questions keep
    the judge's two anchor judgements per question affordable)."""
    if per_question is None:
        return sample(rows, limit, seed)
    by_question: dict[str, list[GradedAnswer]] = defaultdict(list)
    for row in rows:
        by_question[row.question].append(row)
    names = sorted(by_question)
    rng = np.random.default_rng(seed)
    if questions is not None and questions < len(names):
        names = [names[i] for i in sorted(rng.choice(len(names), questions, replace=False))]
    chosen = []
    for name in names:
        group = by_question[name]
        k = min(per_question, len(group))
        chosen += [group[i] for i in sorted(rng.choice(len(group), k, replace=False))]
    return chosen


def read_cache(path: Path) -> dict[str, dict]:
    known: dict[str, dict] = {}
    if not path.exists():
        return known
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
            known[entry["key"]] = entry
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by an interrupted run
    return known


def row_key(version: str, model: str, row: GradedAnswer) -> str:
    question = question_from_reference(row.question, row.reference_answer, row.max_score)
    return hashlib.sha256(
        "\0".join([version, model, question.model_dump_json(), row.answer]).encode()
    ).hexdigest()


def judge_rows(rows: Sequence[GradedAnswer], path: Path) -> None:
    from interviewer.scoring.judge import Judge  # lazy: loads torch

    judge = Judge()
    version = judge_fingerprint(judge.dtype)
    known = read_cache(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    todo = [r for r in rows if row_key(version, judge.model_name, r) not in known]
    # Seeded shuffle: a run stopped early has judged answers spread over all its questions.
    todo = [todo[i] for i in np.random.default_rng(0).permutation(len(todo))]
    print(f"{len(rows)} rows, {len(rows) - len(todo)} already judged", file=sys.stderr)
    started = time.monotonic()
    for i, row in enumerate(todo, 1):
        question = question_from_reference(row.question, row.reference_answer, row.max_score)
        j = judge.score(question, row.answer)
        entry = {
            "key": row_key(version, judge.model_name, row),
            "score": j.score,
            "reference_match": j.reference_match,
            "criteria": [c.probability for c in j.criteria],
            "red_flags": [f.probability for f in j.red_flags],
            "dtype": judge.dtype,
        }
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
        rate = (time.monotonic() - started) / i
        print(f"{i}/{len(todo)} {rate:.1f} s/answer", file=sys.stderr, flush=True)


# --- the figures -----------------------------------------------------------------------------


def similarities(
    rows: Sequence[GradedAnswer], embedder: Path | None = None
) -> list[sim.Similarity]:
    """Each row's ``similarity.measure``, every distinct text embedded once in one batch.

    ``embedder``: a sentence-transformers folder instead of the product's MiniLM (to measure
    all-mpnet-base-v2 beside it)."""
    from interviewer.scoring.evidence import EvidenceFinder, split_sentences  # lazy: torch
    from interviewer.scoring.judge_checks import NULL_ANSWER

    finder = EvidenceFinder(embedder).load()
    questions = [question_from_reference(r.question, r.reference_answer, r.max_score) for r in rows]
    texts = {NULL_ANSWER}
    for row, question in zip(rows, questions, strict=True):
        texts.update([row.answer, *(s.text for s in split_sentences(row.answer))])
        texts.update(sim.topic_texts(question))
    ordered = sorted(texts)
    index = {t: i for i, t in enumerate(ordered)}
    vectors = finder.embed(ordered)

    def embed(batch: Sequence[str]) -> np.ndarray:
        return vectors[[index[t] for t in batch]]

    return [sim.measure(embed, q, r.answer) for r, q in zip(rows, questions, strict=True)]


def judged(rows: Sequence[GradedAnswer], dtype: str) -> list[float | None]:
    """The cached judge score of each row (None where it was not judged)."""
    from interviewer.scoring.judge import DTYPES

    version = judge_fingerprint(dtype)
    model = next(iter(DTYPES))  # the shipped judge, qwen2.5-1.5b
    known = read_cache(cache_path())
    return [known.get(row_key(version, model, r), {}).get("score") for r in rows]


def bootstrap(
    predicted: np.ndarray, human: np.ndarray, resamples: int = 1000, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """90% intervals of Pearson r and QWK over resampled answers."""
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        pick = rng.integers(0, len(human), len(human))
        m = metrics(predicted[pick], human[pick])
        draws.append((m.pearson, m.qwk))
    a = np.array(draws)
    return {
        name: tuple(float(v) for v in np.nanpercentile(a[:, i], [5, 95]))
        for i, name in enumerate(("r", "qwk"))
    }


def line(name: str, predicted: np.ndarray, human: np.ndarray) -> str:
    m = metrics(predicted, human)
    ci = bootstrap(predicted, human)
    return (
        f"| {name} | {m.n} | {m.pearson:.3f} ({ci['r'][0]:.2f}..{ci['r'][1]:.2f}) | "
        f"{m.spearman:.3f} | {m.rmse:.3f} | {m.qwk:.3f} ({ci['qwk'][0]:.2f}..{ci['qwk'][1]:.2f}) |"
    )


def blended(judge: np.ndarray, share: np.ndarray, weight: float) -> np.ndarray:
    return (1 - weight) * judge + weight * share


def fit_spread(
    judge: np.ndarray, share: np.ndarray, human: np.ndarray, resamples: int = 200
) -> tuple[float, float, float]:
    """How firmly the train rows fix the weight: 5th, 50th and 95th percentile of the weight
    fitted on resampled rows."""
    rng = np.random.default_rng(0)
    weights = []
    for _ in range(resamples):
        pick = rng.integers(0, len(human), len(human))
        weights.append(fit_weight(judge[pick], share[pick], human[pick], show=False))
    lo, mid, hi = np.percentile(weights, [5, 50, 95])
    return float(lo), float(mid), float(hi)


def fit_weight(
    judge: np.ndarray, share: np.ndarray, human: np.ndarray, *, show: bool = True
) -> float:
    """The similarity weight with the best mean of Pearson r and QWK (linear mapping fit on the
    same rows): this is where the product's ``SIMILARITY_WEIGHT`` comes from (SAF train only)."""
    best, best_value = 0.0, -np.inf
    curve = []
    for weight in np.linspace(0, 1, 21):
        x = blended(judge, share, weight)
        m = metrics(LinearMapping().fit(x, human)(x), human)
        value = (m.pearson + m.qwk) / 2
        curve.append(f"{weight:.2f}: r {m.pearson:.3f} QWK {m.qwk:.3f}")
        if value > best_value:
            best, best_value = float(weight), value
    if show:
        print("train fit, weight: r / QWK after a linear mapping\n  " + "\n  ".join(curve[:9]))
    return best


def caps(
    rows: Sequence[GradedAnswer],
    embedder: Path | None,
    sims: Sequence[sim.Similarity] | None = None,
) -> np.ndarray:
    """The relevance cap of each row: always MiniLM's, as in the product (its thresholds were
    set on MiniLM cosines); ``sims`` are reused when they are MiniLM's."""
    if embedder is not None or sims is None:
        sims = similarities(rows)
    return np.array([s.cap for s in sims])


def own_scale(
    own_train: Path | None, dtype: str, weight: float, embedder: Path | None
) -> LinearMapping | None:
    """The blend's linear mapping to a set's own scale, fit on the judged rows of its train
    split (None when none of them was judged)."""
    if own_train is None:
        return None
    rows = read_csv(own_train)
    js = judged(rows, dtype)
    rows = [r for r, j in zip(rows, js, strict=True) if j is not None]
    if len(rows) < 10:
        return None
    j = np.array([v for v in js if v is not None])
    sims = similarities(rows, embedder)
    x = np.minimum(
        blended(j, np.array([s.share for s in sims]), weight), caps(rows, embedder, sims)
    )
    print(f"  own-scale mapping fit on {len(rows)} judged rows of {own_train.name}")
    return LinearMapping().fit(x, [r.human_normalized for r in rows])


def report(
    train: Path,
    tests: Sequence[tuple[Path, Path | None, int | None]],
    dtype: str,
    embedder: Path | None = None,
) -> None:
    label = embedder.name if embedder else "MiniLM"
    print(f"similarity embedder: {label}")
    train_rows = read_csv(train)
    train_judge = judged(train_rows, dtype)
    fit_rows = [r for r, j in zip(train_rows, train_judge, strict=True) if j is not None]
    fit_judge = np.array([j for j in train_judge if j is not None])
    fit_sims = similarities(fit_rows, embedder)
    fit_human = np.array([r.human_normalized for r in fit_rows])
    fit_share = np.array([s.share for s in fit_sims])
    weight = fit_weight(fit_judge, fit_share, fit_human) if fit_rows else sim.SIMILARITY_WEIGHT
    print(
        f"fit on {len(fit_rows)} judged SAF train answers: similarity weight {weight:.2f} "
        f"(shipped {sim.SIMILARITY_WEIGHT})"
    )
    if fit_rows:
        lo, mid, hi = fit_spread(fit_judge, fit_share, fit_human)
        print(f"  refit on 200 resamples of those rows: median {mid:.2f}, 90% {lo:.2f}..{hi:.2f}")
    for path, own_train, limit in tests:
        rows = sample(read_csv(path), limit, 0)
        sims = similarities(rows, embedder)
        human = np.array([r.human_normalized for r in rows])
        share = np.array([s.share for s in sims])
        cosine = np.array([s.reference for s in sims])
        # The mapping to the set's own scale, fit on its train split (a seeded 300 rows).
        cal_rows = sample(read_csv(own_train), 300, 0) if own_train else []
        cal_sims = similarities(cal_rows, embedder) if cal_rows else []
        cal_human = np.array([r.human_normalized for r in cal_rows])
        print(f"\n{path.name}: {len(rows)} answers to {len({r.question for r in rows})} questions")
        print("| scorer | n | Pearson r (90%) | Spearman | RMSE | QWK (90%) |")
        print("|---|---|---|---|---|---|")
        for name, x, cal_x in (
            (f"{label} cosine", cosine, np.array([s.reference for s in cal_sims])),
            ("similarity share", share, np.array([s.share for s in cal_sims])),
        ):
            mapping = LinearMapping().fit(cal_x, cal_human) if cal_rows else None
            print(line(name, mapping(x) if mapping else np.clip(x, 0, 1), human))
        js = judged(rows, dtype)
        have = np.array([j is not None for j in js])
        if have.any():
            j = np.array([v for v in js if v is not None])
            h, sh = human[have], share[have]
            cap = caps(rows, embedder, sims)[have]
            print(line("judge (fixed)", j, h))
            fitted = np.minimum(blended(j, sh, weight), cap)
            shipped = np.minimum(blended(j, sh, sim.SIMILARITY_WEIGHT), cap)
            print(line(f"judge + similarity {weight:.2f} + cap (fixed)", fitted, h))
            print(
                line(
                    f"shipped: judge + similarity {sim.SIMILARITY_WEIGHT} + cap (fixed)", shipped, h
                )
            )
            print(line("similarity share (same rows)", sh, h))
            mapping = own_scale(own_train, dtype, weight, embedder)
            if mapping is not None:
                name = f"judge + similarity {weight:.2f} + cap, own-scale mapping"
                print(line(name, mapping(fitted), h))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("judge", help="judge a sample's answers into the cache")
    run.add_argument("csv", type=Path)
    run.add_argument("--limit", type=int)
    run.add_argument("--per-question", type=int)
    run.add_argument("--questions", type=int)
    run.add_argument("--seed", type=int, default=0)
    rep = sub.add_parser("report", help="fit on judged SAF train answers, report on test sets")
    rep.add_argument("train", type=Path, help="SAF train CSV (its judged rows fit the blend)")
    rep.add_argument(
        "--test",
        nargs=3,
        action="append",
        default=[],
        metavar=("CSV", "TRAIN_CSV", "LIMIT"),
        help="test CSV, its train CSV, limit",
    )
    rep.add_argument("--dtype", default="bfloat16")
    rep.add_argument(
        "--embedder", type=Path, help="sentence-transformers folder to use instead of MiniLM"
    )
    args = parser.parse_args(argv)
    if args.command == "report":
        tests = [(Path(a), Path(b), int(c) if c != "all" else None) for a, b, c in args.test]
        report(args.train, tests, args.dtype, args.embedder)
    if args.command == "judge":
        rows = pick(read_csv(args.csv), args.limit, args.per_question, args.questions, args.seed)
        judge_rows(rows, cache_path())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
