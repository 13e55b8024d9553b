"""How well the rubric scorer agrees with human graders, on public short-answer grading sets.

``interviewer eval asag FILE.csv`` reads human-graded answers (columns ``question``,
``reference_answer``, ``answer``, ``human_score``, ``max_score``; others are kept but ignored;
``scripts/asag_to_csv.py`` makes such files from SAF and SemEval-2013), turns every reference
answer into a rubric with ``question_from_reference`` (so the judge sees exactly the kind of
``banks.Question`` a domain lead writes), scores every answer with the judge, and reports
agreement with the humans next to a baseline: the cosine similarity of all-MiniLM-L6-v2
embeddings of the answer and the reference.

Everything is compared on the **normalised scale** (score / max_score, in [0, 1]): questions
worth 1 and 3.5 points then weigh the same, and the numbers are comparable across data sets.

* Pearson r and Spearman rho do not depend on the mapping from judge score to the human scale
  (rho not at all, r not for a linear one): they are the fair comparison of scorers.
* RMSE and quadratic weighted kappa do. The **mapping** is ``fixed`` unless a calibration file
  is given: the judge's score is taken as the normalised score as is (it is already the weighted
  share of the rubric met), and the baseline's cosine is clipped to [0, 1] (crude: cosines of
  related texts rarely go below 0.2). With ``calibrate=`` rows (a *different* file, e.g. the
  data set's train split, never the rows under test) a ``linear`` (default) or ``isotonic``
  fit from each scorer's raw output to the human normalised score is learnt on those rows and
  applied to the test rows; the trivial "predict the calibration rows' mean" is then reported
  too, as a floor.
* Kappa needs categories: normalised scores are rounded to the nearest quarter (five levels,
  0, .25, .5, .75, 1), for humans and predictions alike, with quadratic weights over the five.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from interviewer.banks import model as banks
from interviewer.errors import UserError
from interviewer.scoring import judge as judge_module
from interviewer.scoring import judge_checks, judge_combine
from interviewer.scoring.asag_data import (
    MAKE_CSV,
    REQUIRED_COLUMNS,
    AsagDataError,
    GradedAnswer,
    read_csv,
    sample,
)
from interviewer.scoring.asag_metrics import (
    KAPPA_STEPS,
    MAPPINGS,
    IsotonicMapping,
    LinearMapping,
    Mapping,
    Metrics,
    average_ranks,
    make_mapping,
    metrics,
    pearson,
    quadratic_weighted_kappa,
    rmse,
    spearman,
    to_levels,
)
from interviewer.scoring.asag_rubric import (
    MAX_KEY_POINTS,
    _lower_first,
    key_points_of,
    question_from_reference,
)
from interviewer.scoring.judge import Judge
from interviewer.weights import embedder_dir

if TYPE_CHECKING:
    from rich.progress import Progress

# The evaluation's whole API stays importable from here (``asag.read_csv``, ``asag.metrics``...):
# the CSV, the rubric from a reference answer and the metrics live in asag_data, asag_rubric and
# asag_metrics; the scorers and the evaluation run below.
__all__ = [
    "BASELINE",
    "FLOOR",
    "JUDGE",
    "KAPPA_STEPS",
    "MAKE_CSV",
    "MAPPINGS",
    "MAX_KEY_POINTS",
    "REQUIRED_COLUMNS",
    "AsagDataError",
    "Evaluation",
    "GradedAnswer",
    "IsotonicMapping",
    "LinearMapping",
    "Mapping",
    "Metrics",
    "Scorer",
    "_lower_first",
    "average_ranks",
    "embedding_scorer",
    "evaluate",
    "judge_fingerprint",
    "judge_scorer",
    "key_points_of",
    "make_mapping",
    "metrics",
    "pearson",
    "quadratic_weighted_kappa",
    "question_from_reference",
    "raw_scores",
    "read_csv",
    "rmse",
    "sample",
    "spearman",
    "to_levels",
]

# --- scorers ---------------------------------------------------------------------------------

Scorer = Callable[[GradedAnswer], float]


def judge_scorer(
    model: str | None = None, model_dir: Path | None = None, cache: Path | None = None
) -> Scorer:
    """The rubric judge on the reference answer's rubric: its question score, in [0, 1].

    ``cache``: a JSONL file of scores already computed, read first and appended to as rows are
    scored, so a long run that stops can be resumed. Entries are keyed by the judge's code and
    dtype, the model, the whole rubric and the answer: a change to the judge or to
    ``question_from_reference``, or a machine that computes in another dtype, never reuses
    stale scores.
    """
    judge = Judge(model=model, model_dir=model_dir)
    questions: dict[tuple[str, str, float], banks.Question] = {}
    known = _read_cache(cache) if cache else {}
    version = judge_fingerprint(judge.dtype)
    if cache is not None and cache.exists() and cache.stat().st_size:
        with cache.open("rb+") as f:  # end a line an interrupted run cut short
            f.seek(-1, 2)
            if f.read(1) != b"\n":
                f.write(b"\n")

    def score(row: GradedAnswer) -> float:
        key = (row.question, row.reference_answer, row.max_score)
        if key not in questions:
            questions[key] = question_from_reference(*key)
        question = questions[key]
        digest = hashlib.sha256(
            "\0".join([version, judge.model_name, question.model_dump_json(), row.answer]).encode()
        ).hexdigest()
        if digest not in known:
            known[digest] = float(judge.score(question, row.answer).score)
            if cache is not None:
                with cache.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"key": digest, "score": known[digest]}) + "\n")
        return known[digest]

    return score


def judge_fingerprint(dtype: str) -> str:
    """A digest of the judge's source and dtype: its prompts and arithmetic are what the scores
    mean, and float32 and bfloat16 give slightly different ones (``judge.DTYPES``)."""
    digest = hashlib.sha256(f"dtype={dtype}\0".encode())
    for module in (judge_module, judge_checks, judge_combine):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def _read_cache(path: Path) -> dict[str, float]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise UserError(f"{path}: cannot read the score cache ({err.strerror})") from None
    known = {}
    for line in lines:
        try:
            entry = json.loads(line)
            known[entry["key"]] = float(entry["score"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by an interrupted run
    return known


def embedding_scorer(
    model_dir: Path | None = None, batch: int = 32
) -> Callable[[Sequence[GradedAnswer]], list[float]]:
    """Cosine similarity of all-MiniLM-L6-v2 embeddings of the answer and its reference."""
    # Lazy: heavy, and only this scorer needs them.
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.utils.logging.disable_progress_bar()  # our own progress bar is on screen
    model = SentenceTransformer(str(embedder_dir(model_dir)), device="cpu")

    def score(rows: Sequence[GradedAnswer]) -> list[float]:
        texts = sorted({r.answer for r in rows} | {r.reference_answer for r in rows})
        vectors = model.encode(
            texts, batch_size=batch, normalize_embeddings=True, show_progress_bar=False
        )
        index = {t: v for t, v in zip(texts, vectors, strict=True)}
        return [float(np.dot(index[r.answer], index[r.reference_answer])) for r in rows]

    return score


# --- the evaluation --------------------------------------------------------------------------

JUDGE, BASELINE, FLOOR = "LLM judge", "embedding baseline", "calibration mean"


@dataclass
class Evaluation:
    rows: list[GradedAnswer]
    mapping: str
    raw: dict[str, list[float]]  # scorer -> raw output per row
    predicted: dict[str, list[float]]  # scorer -> normalised prediction per row
    metrics: dict[str, Metrics]
    calibration_rows: int = 0

    def write_csv(self, path: Path) -> None:
        """The input rows with all their columns, plus the predictions on the human scale."""
        extra = ["predicted", "predicted_baseline", "judge_score", "baseline_cosine"]
        columns: list[str] = []
        for row in self.rows:
            columns += [c for c in row.columns if c not in columns and c not in extra]
        with Path(path).open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=[*columns, *extra])
            writer.writeheader()
            for i, row in enumerate(self.rows):
                writer.writerow(
                    {
                        **row.columns,
                        "predicted": f"{self.predicted[JUDGE][i] * row.max_score:.4f}",
                        "predicted_baseline": f"{self.predicted[BASELINE][i] * row.max_score:.4f}",
                        "judge_score": f"{self.raw[JUDGE][i]:.4f}",
                        "baseline_cosine": f"{self.raw[BASELINE][i]:.4f}",
                    }
                )


@contextmanager
def _task(progress: Progress | None, description: str, total: int) -> Iterator[Callable[[], None]]:
    if progress is None:
        yield lambda: None
        return
    task = progress.add_task(description, total=total)
    yield lambda: progress.advance(task)


def raw_scores(
    rows: Sequence[GradedAnswer],
    judge: Scorer,
    baseline: Callable[[Sequence[GradedAnswer]], list[float]],
    *,
    progress: Progress | None = None,
    label: str = "",
) -> dict[str, list[float]]:
    with _task(progress, f"embed {label}".strip(), 1) as advance:
        cosines = baseline(rows)
        advance()
    judged = []
    with _task(progress, f"judge {label}".strip(), len(rows)) as advance:
        for row in rows:
            judged.append(judge(row))
            advance()
    return {JUDGE: judged, BASELINE: cosines}


def evaluate(
    rows: Sequence[GradedAnswer],
    judge: Scorer,
    baseline: Callable[[Sequence[GradedAnswer]], list[float]],
    *,
    calibration: Sequence[GradedAnswer] = (),
    mapping: str | None = None,
    progress: Progress | None = None,
) -> Evaluation:
    """Score ``rows`` with both scorers and compare with the humans (see the module doc).

    ``calibration`` rows, if any, must not be the rows under test: the mapping is learnt on
    them alone.
    """
    mapping = mapping or ("linear" if calibration else "fixed")
    if mapping != "fixed" and not calibration:
        raise UserError(
            f"the {mapping} mapping is fitted on other graded answers: pass a calibration file "
            "(e.g. the train split: `python scripts/asag_to_csv.py saf --split train -o T.csv`)"
        )
    rows = list(rows)
    human = [r.human_normalized for r in rows]
    raw = raw_scores(rows, judge, baseline, progress=progress, label="(test)")
    mappers: dict[str, Mapping] = {name: make_mapping(mapping) for name in raw}
    if calibration:
        cal_raw = raw_scores(calibration, judge, baseline, progress=progress, label="(calibrate)")
        cal_human = [r.human_normalized for r in calibration]
        for name, mapper in mappers.items():
            mapper.fit(cal_raw[name], cal_human)
    predicted = {name: [float(v) for v in mappers[name](raw[name])] for name in raw}
    results = {name: metrics(predicted[name], human) for name in predicted}
    if calibration:
        floor = float(np.mean([r.human_normalized for r in calibration]))
        predicted[FLOOR] = [floor] * len(rows)
        results[FLOOR] = metrics(predicted[FLOOR], human)
    return Evaluation(
        rows=rows,
        mapping=mapping,
        raw=raw,
        predicted=predicted,
        metrics=results,
        calibration_rows=len(calibration),
    )
