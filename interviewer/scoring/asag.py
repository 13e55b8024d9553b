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
import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from interviewer.banks import model as banks
from interviewer.errors import UserError

if TYPE_CHECKING:
    from rich.progress import Progress

REQUIRED_COLUMNS = ("question", "reference_answer", "answer", "human_score", "max_score")
MAX_KEY_POINTS = 6
KAPPA_STEPS = 4  # quarters: five levels
MAPPINGS = ("fixed", "linear", "isotonic")
MAKE_CSV = "make one with `python scripts/asag_to_csv.py saf -o FILE.csv`"


class AsagDataError(UserError):
    """A problem in the CSV of graded answers: names the file (and line) and what to fix."""


@dataclass(frozen=True)
class GradedAnswer:
    line: int
    question: str
    reference_answer: str
    answer: str
    human_score: float
    max_score: float
    columns: dict[str, str] = field(default_factory=dict, compare=False)  # every column, as read

    @property
    def human_normalized(self) -> float:
        return self.human_score / self.max_score


# --- reading the CSV -------------------------------------------------------------------------


def read_csv(path: Path) -> list[GradedAnswer]:
    """Every row of ``path``; the first problem raises ``AsagDataError`` in one line."""
    path = Path(path)
    try:
        f = path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise AsagDataError(f"{path}: no such file; {MAKE_CSV}") from None
    except OSError as err:
        raise AsagDataError(f"{path}: cannot read it ({err.strerror})") from None
    with f:
        reader = csv.DictReader(f)
        try:
            header = reader.fieldnames or []
        except (csv.Error, UnicodeDecodeError) as err:
            raise AsagDataError(f"{path}: not a UTF-8 CSV file ({err})") from None
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise AsagDataError(
                f"{path}: missing column(s) {', '.join(missing)}; the header must name "
                f"{','.join(REQUIRED_COLUMNS)} (other columns are ignored)"
            )
        rows = []
        try:
            for record in reader:
                rows.append(_row(path, reader.line_num, record))
        except (csv.Error, UnicodeDecodeError) as err:
            raise AsagDataError(f"{path}:{reader.line_num}: unreadable CSV ({err})") from None
    if not rows:
        raise AsagDataError(f"{path}: no answers below the header; {MAKE_CSV}")
    return rows


def _row(path: Path, line: int, record: dict[str, Any]) -> GradedAnswer:
    if None in record:  # more cells than header names
        raise AsagDataError(f"{path}:{line}: more cells than columns in the header")
    where = f"{path}:{line}"
    text = {c: (record.get(c) or "").strip() for c in ("question", "reference_answer", "answer")}
    for column in ("question", "reference_answer"):
        if not text[column]:
            raise AsagDataError(f"{where}: {column} is empty")
    human = _number(where, "human_score", record.get("human_score"))
    maximum = _number(where, "max_score", record.get("max_score"))
    if maximum <= 0:
        raise AsagDataError(f"{where}: max_score must be above 0, not {maximum:g}")
    if not 0 <= human <= maximum:
        raise AsagDataError(f"{where}: human_score {human:g} is outside 0..max_score ({maximum:g})")
    return GradedAnswer(
        line=line,
        question=text["question"],
        reference_answer=text["reference_answer"],
        answer=text["answer"],
        human_score=human,
        max_score=maximum,
        columns={k: v for k, v in record.items() if k is not None},
    )


def _number(where: str, column: str, value: str | None) -> float:
    try:
        number = float((value or "").strip())
    except ValueError:
        raise AsagDataError(f"{where}: {column} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise AsagDataError(f"{where}: {column} {value!r} is not a finite number")
    return number


def sample(rows: Sequence[Any], limit: int | None, seed: int = 0) -> list[Any]:
    """A fixed seeded sample of ``limit`` rows, kept in file order; all rows without a limit."""
    if limit is None or limit >= len(rows):
        return list(rows)
    if limit < 1:
        raise UserError(f"--limit must be at least 1, not {limit}")
    picks = np.random.default_rng(seed).choice(len(rows), size=limit, replace=False)
    return [rows[i] for i in sorted(picks)]


# --- reference answer -> rubric --------------------------------------------------------------

_BULLET = re.compile(r"^(?:[-*•●○◦▪■□‣–—→]+|\(?\d{1,2}[.)]|\(?[a-hA-H][.)])\s+")
_POINTS = re.compile(r"\(\s*\d*\.?\d+\s*(?:p|pts?|points?)?\s*\)")  # "(0.25)" grading marks
_NOTE = re.compile(r"^(?:note|notes|hint|nb|n\.b\.)\s*[:.]", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\s*;\s+")
_SPACE = re.compile(r"\s+")


def key_points_of(reference_answer: str, max_points: int = MAX_KEY_POINTS) -> list[str]:
    """The points a reference answer makes: its sentences, clauses and bullet items.

    Reference answers written for human graders carry structure a rubric can use: lines
    hard-wrapped mid-sentence are joined again, bullet items under a heading ("Drawbacks:",
    "Replication") become "heading: item" points, grading notes ("Note: ...") and point marks
    ("(0.25)") are dropped, and fragments under three words stay with their sentence. Beyond
    ``max_points`` the shortest neighbours are merged (under one heading when they share it):
    every point still counts, and the judge's cost per answer stays bounded.
    """
    points: list[tuple[str | None, list[str]]] = []
    heading: str | None = None
    lines = _logical_lines(reference_answer)
    for i, (bullet, line) in enumerate(lines):
        if _NOTE.match(line):
            continue
        next_is_bullet = i + 1 < len(lines) and lines[i + 1][0]
        if line.endswith(":") or (
            not bullet and next_is_bullet and len(line.split()) <= 4 and line[-1] not in ".!?"
        ):
            heading = line.rstrip(":").strip()
            continue
        if not bullet:
            heading = None
        pieces: list[str] = []
        for piece in _SENTENCE.split(line):
            piece = piece.strip()
            if piece and pieces and len(piece.split()) < 3:
                pieces[-1] = f"{pieces[-1]} {piece}"
            elif piece:
                pieces.append(piece)
        for piece in pieces:
            point = (heading if bullet else None, [piece])
            if point not in points:
                points.append(point)
    if not points:
        return [_SPACE.sub(" ", reference_answer).strip()]
    while len(points) > max_points:
        i = min(range(len(points) - 1), key=lambda i: _merge_cost(points[i], points[i + 1]))
        (h1, t1), (h2, t2) = points[i], points[i + 1]
        if h1 == h2:
            points[i : i + 2] = [(h1, t1 + t2)]
        else:
            points[i : i + 2] = [(None, [_render(points[i]), _render(points[i + 1])])]
    return [_render(point) for point in points]


def _logical_lines(text: str) -> list[tuple[bool, str]]:
    """(is a bullet item, text) per line, with hard-wrapped continuation lines joined back."""
    out: list[tuple[bool, str]] = []
    for raw in text.splitlines():
        raw = _SPACE.sub(" ", raw).strip()
        if not raw:
            continue
        bullet = bool(_BULLET.match(raw))
        line = _SPACE.sub(" ", _POINTS.sub("", _BULLET.sub("", raw))).strip(" ,")
        if not line:
            continue
        continues = not bullet and (line[0].islower() or line[0] == "(")
        if out and continues and out[-1][1][-1] not in ".!?:":
            out[-1] = (out[-1][0], f"{out[-1][1]} {line}")
        else:
            out.append((bullet, line))
    return out


def _render(point: tuple[str | None, list[str]]) -> str:
    heading, texts = point
    body = texts[0] if len(texts) == 1 else "; ".join(t.rstrip(" ;.") for t in texts)
    return f"{heading}: {body}" if heading else body


def _lower_first(text: str) -> str:
    """Lower-case a sentence's first letter ("The bulb" -> "the bulb"), never an acronym's."""
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text


def _merge_cost(a: tuple[str | None, list[str]], b: tuple[str | None, list[str]]) -> tuple:
    """Merge within a heading first, then the pair with the fewest words."""
    return (a[0] != b[0] or a[0] is None, len(_render(a).split()) + len(_render(b).split()))


def question_from_reference(
    question: str,
    reference_answer: str,
    max_score: float,
    *,
    max_points: int = MAX_KEY_POINTS,
) -> banks.Question:
    """A bank question whose rubric is the reference answer, its points as key points.

    The criterion is worth ``max_score`` (its weight) and has the key points of
    ``key_points_of``, as a domain lead would list them, with levels "none / some / all of
    these points" (two levels for a one-point answer). Its description lists the points, so the
    level checks make sense on their own: the judge does not show the model the reference
    answer (it judges the reference as its top anchor instead). One criterion rather than one
    per point: the judge reads a criterion's level mostly off its key points either way, and
    per-point criteria would add two level checks per point for little.
    """
    if max_score <= 0:
        raise ValueError(f"max_score must be above 0, not {max_score}")
    points = key_points_of(reference_answer, max_points)
    digest = hashlib.sha1(f"{question}\0{reference_answer}".encode()).hexdigest()[:10]
    if len(points) == 1:
        description = f"Says that {_lower_first(points[0])}"
        levels = [
            banks.Level(score=0, descriptor="Does not say this, or says something else."),
            banks.Level(score=1, descriptor="Says this."),
        ]
    else:
        description = "Says these points: " + " | ".join(points)
        levels = [
            banks.Level(score=0, descriptor="Says none of these points."),
            banks.Level(score=1, descriptor="Says some of these points."),
            banks.Level(score=2, descriptor="Says all of these points."),
        ]
    criterion = banks.Criterion(
        id="reference-points",
        description=description,
        weight=max_score,
        levels=levels,
        key_points=[
            banks.KeyPoint(id=f"point-{n}", text=text) for n, text in enumerate(points, start=1)
        ],
    )
    return banks.Question(
        id=f"asag-{digest}",
        prompt=question,
        reference_answer=reference_answer,
        rubric=banks.Rubric(criteria=[criterion]),
    )


# --- metrics ---------------------------------------------------------------------------------


def _pair(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two equally long sequences, got {a.shape} and {b.shape}")
    return a, b


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """NaN when either side is constant (no correlation is defined)."""
    a, b = _pair(x, y)
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else math.nan


def average_ranks(x: Sequence[float]) -> np.ndarray:
    """Ranks from 1, ties given the mean of the ranks they span."""
    a = np.asarray(x, dtype=float)
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(len(a))
    sorted_a = a[order]
    start = 0
    for end in range(1, len(a) + 1):
        if end == len(a) or sorted_a[end] != sorted_a[start]:
            ranks[order[start:end]] = (start + end + 1) / 2
            start = end
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    a, b = _pair(x, y)
    return pearson(average_ranks(a), average_ranks(b))


def rmse(x: Sequence[float], y: Sequence[float]) -> float:
    a, b = _pair(x, y)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def to_levels(normalized: Sequence[float], steps: int = KAPPA_STEPS) -> np.ndarray:
    """Normalised scores to integer levels 0..steps (nearest; halves round up)."""
    a = np.clip(np.asarray(normalized, dtype=float), 0, 1)
    return np.floor(a * steps + 0.5).astype(int)


def quadratic_weighted_kappa(a: Sequence[int], b: Sequence[int], levels: int) -> float:
    """Cohen's kappa with quadratic weights over the categories 0..levels-1."""
    x, y = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    if x.shape != y.shape or x.size == 0:
        raise ValueError("need two equally long, non-empty sequences of levels")
    if x.min() < 0 or y.min() < 0 or x.max() >= levels or y.max() >= levels:
        raise ValueError(f"levels must be in 0..{levels - 1}")
    observed = np.zeros((levels, levels))
    np.add.at(observed, (x, y), 1)
    expected = np.outer(np.bincount(x, minlength=levels), np.bincount(y, minlength=levels))
    expected = expected / x.size
    index = np.arange(levels)
    weights = (index[:, None] - index[None, :]) ** 2 / (levels - 1) ** 2
    disagreement = float((weights * expected).sum())
    if disagreement == 0:
        return math.nan
    return 1 - float((weights * observed).sum()) / disagreement


@dataclass(frozen=True)
class Metrics:
    n: int
    pearson: float
    spearman: float
    rmse: float
    qwk: float


def metrics(predicted: Sequence[float], human: Sequence[float]) -> Metrics:
    """All four, on the normalised scale (see the module doc)."""
    p, h = _pair(predicted, human)
    return Metrics(
        n=len(p),
        pearson=pearson(p, h),
        spearman=spearman(p, h),
        rmse=rmse(p, h),
        qwk=quadratic_weighted_kappa(to_levels(p), to_levels(h), KAPPA_STEPS + 1),
    )


# --- mapping raw scorer output to the human scale --------------------------------------------


class Mapping:
    """Raw scorer output -> predicted normalised score; ``fit`` learns from other rows."""

    name = "fixed"

    def fit(self, raw: Sequence[float], human: Sequence[float]) -> Mapping:
        return self

    def __call__(self, raw: Sequence[float]) -> np.ndarray:
        return np.clip(np.asarray(raw, dtype=float), 0, 1)


class LinearMapping(Mapping):
    name = "linear"

    def fit(self, raw: Sequence[float], human: Sequence[float]) -> LinearMapping:
        x, y = _pair(raw, human)
        if x.size == 0:
            raise ValueError("no rows to fit on")
        if np.ptp(x) == 0:  # a constant scorer: the best line is the mean
            self.slope, self.intercept = 0.0, float(y.mean())
        else:
            self.slope, self.intercept = (float(v) for v in np.polyfit(x, y, 1))
        return self

    def __call__(self, raw: Sequence[float]) -> np.ndarray:
        x = np.asarray(raw, dtype=float)
        return np.clip(self.intercept + self.slope * x, 0, 1)


class IsotonicMapping(Mapping):
    """Monotone non-decreasing fit (pool adjacent violators), linear between fitted points."""

    name = "isotonic"

    def fit(self, raw: Sequence[float], human: Sequence[float]) -> IsotonicMapping:
        x, y = _pair(raw, human)
        if x.size == 0:
            raise ValueError("no rows to fit on")
        order = np.argsort(x, kind="mergesort")
        xs, ys = x[order], y[order]
        # Equal x first become one point (their mean), then PAV over the distinct x.
        ux, start = np.unique(xs, return_index=True)
        sums = np.add.reduceat(ys, start)
        counts = np.diff(np.append(start, len(xs))).astype(float)
        blocks: list[list[float]] = []  # [sum, count, first index, last index]
        for i, (s, c) in enumerate(zip(sums, counts, strict=True)):
            blocks.append([s, c, i, i])
            while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
                s2, c2, _, last = blocks.pop()
                blocks[-1][0] += s2
                blocks[-1][1] += c2
                blocks[-1][3] = last
        fitted = np.empty(len(ux))
        for s, c, first, last in blocks:
            fitted[int(first) : int(last) + 1] = s / c
        self.x, self.y = ux, fitted
        return self

    def __call__(self, raw: Sequence[float]) -> np.ndarray:
        return np.clip(np.interp(np.asarray(raw, dtype=float), self.x, self.y), 0, 1)


def make_mapping(name: str) -> Mapping:
    if name not in MAPPINGS:
        raise UserError(f"unknown mapping {name!r}; choose one of {', '.join(MAPPINGS)}")
    return {"fixed": Mapping, "linear": LinearMapping, "isotonic": IsotonicMapping}[name]()


# --- scorers ---------------------------------------------------------------------------------

Scorer = Callable[[GradedAnswer], float]


def judge_scorer(
    model: str | None = None, model_dir: Path | None = None, cache: Path | None = None
) -> Scorer:
    """The rubric judge on the reference answer's rubric: its question score, in [0, 1].

    ``cache``: a JSONL file of scores already computed, read first and appended to as rows are
    scored, so a long run that stops can be resumed. Entries are keyed by the judge's code, the
    model, the whole rubric and the answer: a change to the judge or to
    ``question_from_reference`` never reuses stale scores.
    """
    from interviewer.scoring.judge import Judge

    judge = Judge(model=model, model_dir=model_dir)
    questions: dict[tuple[str, str, float], banks.Question] = {}
    known = _read_cache(cache) if cache else {}
    version = judge_fingerprint()
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


def judge_fingerprint() -> str:
    """A digest of the judge's source: its prompts and arithmetic are what the scores mean."""
    from interviewer.scoring import judge

    return hashlib.sha256(Path(judge.__file__).read_bytes()).hexdigest()[:16]


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
    import transformers
    from sentence_transformers import SentenceTransformer

    from interviewer.weights import embedder_dir

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
