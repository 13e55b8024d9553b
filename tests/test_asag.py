"""`interviewer eval asag`: CSV reading, reference answers as rubrics, metrics, mappings, the CLI.

Metrics are checked against scipy and scikit-learn (installed with sentence-transformers); the
end-to-end run uses the real SmolLM2 judge and the real embedder on a few rows written here.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import cohen_kappa_score, mean_squared_error
from typer.testing import CliRunner

from interviewer.banks import model as banks
from interviewer.cli import app
from interviewer.errors import UserError
from interviewer.scoring import asag

HEADER = "question,reference_answer,answer,human_score,max_score"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- reading the CSV -------------------------------------------------------------------------


def test_reads_rows_and_keeps_extra_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.csv",
        "\ufeffuid,question,reference_answer,answer,human_score,max_score,label\n"
        'x1,Why?,"Because A. And B.","Because A, I think",1.5, 2 ,Partially\n'
        "x2,Why?,Because A. And B.,,0,2,Incorrect\n",
    )
    rows = asag.read_csv(path)
    assert [(r.line, r.human_score, r.max_score, r.human_normalized) for r in rows] == [
        (2, 1.5, 2.0, 0.75),
        (3, 0.0, 2.0, 0.0),
    ]
    assert rows[0].columns["uid"] == "x1" and rows[0].columns["label"] == "Partially"
    assert rows[1].answer == ""  # an empty answer is a real (zero) answer, not an error


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("question,answer,human_score\nq,a,1\n", "missing column(s) reference_answer, max_score"),
        (f"{HEADER}\nq,r,a,high,1\n", "a.csv:2: human_score 'high' is not a number"),
        (f"{HEADER}\nq,r,a,1,\n", "a.csv:2: max_score '' is not a number"),
        (f"{HEADER}\nq,r,a,1,nan\n", "a.csv:2: max_score 'nan' is not a finite number"),
        (f"{HEADER}\nq,r,a,0,0\n", "a.csv:2: max_score must be above 0, not 0"),
        (f"{HEADER}\nq,r,a,1,1\nq,r,a,3,2\n", "a.csv:3: human_score 3 is outside 0..max_score (2)"),
        (f"{HEADER}\nq,r,a,-1,2\n", "human_score -1 is outside"),
        (f"{HEADER}\n, r ,a,1,1\n", "a.csv:2: question is empty"),
        (f"{HEADER}\nq,,a,1,1\n", "a.csv:2: reference_answer is empty"),
        (f"{HEADER}\nq,r,a,1,1,extra\n", "a.csv:2: more cells than columns"),
        (f"{HEADER}\n", "no answers below the header"),
        ("", "missing column(s) question, reference_answer"),
    ],
)
def test_csv_problems_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "a.csv", text)
    with pytest.raises(asag.AsagDataError) as err:
        asag.read_csv(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(asag.AsagDataError, match=r"no such file; make one with .*asag_to_csv"):
        asag.read_csv(tmp_path / "nope.csv")
    (tmp_path / "b.csv").write_bytes(b"\xff\xfe\x00q\x00")
    with pytest.raises(asag.AsagDataError, match=r"b\.csv"):
        asag.read_csv(tmp_path / "b.csv")


def test_sample_is_seeded_and_keeps_file_order() -> None:
    rows = list(range(50))
    picked = asag.sample(rows, 10, seed=0)
    assert picked == asag.sample(rows, 10, seed=0) == sorted(picked) and len(set(picked)) == 10
    assert picked != asag.sample(rows, 10, seed=1)
    assert asag.sample(rows, None) == rows == asag.sample(rows, 99)


# --- reference answers as rubrics ------------------------------------------------------------


def test_sentences_become_key_points_of_a_valid_question() -> None:
    question = asag.question_from_reference(
        "Which encoding should the network use? Give two reasons.",
        "Binary encoding, as it uses the bandwidth best. The clocks are perfect; so "
        "self-clocking is not needed. Yes.",
        2.5,
    )
    assert isinstance(question, banks.Question)
    (criterion,) = question.rubric.criteria
    assert criterion.weight == 2.5 and [lv.score for lv in criterion.levels] == [0, 1, 2]
    # The model never sees the reference answer: the description carries the points itself.
    assert criterion.description.startswith("Says these points: Binary encoding, as it")
    assert [k.text for k in criterion.key_points] == [
        "Binary encoding, as it uses the bandwidth best.",
        "The clocks are perfect",
        "so self-clocking is not needed. Yes.",  # a fragment under three words stays attached
    ]
    # It is a bank question like any other: it survives a bank round trip unchanged.
    bank = banks.Bank(
        id="asag", title="t", domain="d", version=1, description="d", questions=[question]
    )
    assert banks.Bank.model_validate(bank.model_dump(mode="json")).questions[0] == question
    again = asag.question_from_reference(question.prompt, question.reference_answer, 2.5)
    assert again.id == question.id and question.id.startswith("asag-")


def test_structured_reference_answers() -> None:
    reference = (
        "Two modes and their drawbacks are:\n"
        "Replication\n"
        "● Issue of scalability (0.25)\n"
        "● More resources, more\ncost\n"
        "Partitioning\n"
        "- Lower availability\n"
        "Note: any one downside per mode is enough.\n"
    )
    assert asag.key_points_of(reference) == [
        "Replication: Issue of scalability",
        "Replication: More resources, more cost",
        "Partitioning: Lower availability",
    ]
    # Capped: neighbours under one heading merge first, nothing is dropped.
    assert asag.key_points_of(reference, max_points=2) == [
        "Replication: Issue of scalability; More resources, more cost",
        "Partitioning: Lower availability",
    ]
    one = asag.question_from_reference("Why?", "Only a note:", 1)
    assert [k.text for k in one.rubric.criteria[0].key_points] == ["Only a note:"]
    assert [lv.score for lv in one.rubric.criteria[0].levels] == [0, 1]
    single = asag.question_from_reference("Why?", "The paperclip is harder.", 1)
    assert single.rubric.criteria[0].description == "Says that the paperclip is harder."
    assert asag._lower_first("DNS resolves names.") == "DNS resolves names."
    many = asag.question_from_reference("Q?", " ".join(f"Point number {i}." for i in range(20)), 1)
    assert len(many.rubric.criteria[0].key_points) == asag.MAX_KEY_POINTS
    with pytest.raises(ValueError, match="above 0"):
        asag.question_from_reference("Q?", "R.", 0)


# --- metrics against scipy / scikit-learn ----------------------------------------------------


def test_metrics_match_scipy_and_sklearn() -> None:
    rng = np.random.default_rng(7)
    human = rng.choice([0, 0.25, 0.5, 0.75, 1.0], size=60)
    predicted = np.clip(human + rng.normal(0, 0.25, size=60), 0, 1)
    predicted[:5] = 0.5  # ties in the predictions too
    assert asag.pearson(predicted, human) == pytest.approx(stats.pearsonr(predicted, human)[0])
    assert asag.spearman(predicted, human) == pytest.approx(stats.spearmanr(predicted, human)[0])
    assert asag.average_ranks([3, 1, 3, 2]) == pytest.approx(stats.rankdata([3, 1, 3, 2]))
    assert asag.rmse(predicted, human) == pytest.approx(
        math.sqrt(mean_squared_error(human, predicted))
    )
    a, b = asag.to_levels(predicted), asag.to_levels(human)
    assert asag.quadratic_weighted_kappa(a, b, 5) == pytest.approx(
        cohen_kappa_score(a, b, weights="quadratic", labels=list(range(5)))
    )
    m = asag.metrics(predicted, human)
    assert (m.n, m.qwk) == (60, pytest.approx(asag.quadratic_weighted_kappa(a, b, 5)))


def test_metric_edge_cases() -> None:
    assert math.isnan(asag.pearson([0.5, 0.5, 0.5], [0, 1, 0.5]))
    assert asag.quadratic_weighted_kappa([0, 1, 2], [0, 1, 2], 3) == pytest.approx(1.0)
    assert list(asag.to_levels([0, 0.124, 0.125, 0.6, 1.2, -1])) == [0, 0, 1, 2, 4, 0]
    with pytest.raises(ValueError, match=r"levels must be in 0\.\.2"):
        asag.quadratic_weighted_kappa([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="equally long"):
        asag.pearson([1, 2], [1])


def test_mappings() -> None:
    raw = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    assert list(asag.make_mapping("fixed")([-0.2, 0.4, 1.3])) == [0.0, 0.4, 1.0]
    linear = asag.make_mapping("linear").fit(raw, 0.2 + 0.5 * raw)
    assert linear([0.2, 0.6]) == pytest.approx([0.3, 0.5])
    assert asag.LinearMapping().fit([0.4, 0.4], [0.2, 0.6])([0.9]) == pytest.approx([0.4])
    x = np.array([0.1, 0.2, 0.2, 0.4, 0.5, 0.7, 0.8, 0.9])
    y = np.array([0.0, 0.5, 0.1, 0.3, 0.2, 1.0, 0.6, 1.0])
    ours = asag.make_mapping("isotonic").fit(x, y)
    theirs = IsotonicRegression(out_of_bounds="clip").fit(x, y)
    probe = np.linspace(0, 1, 23)
    assert ours(probe) == pytest.approx(theirs.predict(probe))
    with pytest.raises(UserError, match="unknown mapping"):
        asag.make_mapping("cubic")


# --- evaluate, with plain scoring functions --------------------------------------------------


def _overlap(row: asag.GradedAnswer) -> float:
    """A stand-in scorer: share of the reference's words the answer uses."""
    ref = set(row.reference_answer.lower().split())
    return len(ref & set(row.answer.lower().split())) / len(ref)


def _lengths(rows) -> list[float]:
    return [min(1.0, len(r.answer) / 40) for r in rows]


def _rows(tmp_path: Path, name: str, data: list[tuple[str, float]]) -> list[asag.GradedAnswer]:
    lines = [f"uid,{HEADER}"]
    lines += [
        f"{i},Q?,the sky is blue today,{answer},{score},2" for i, (answer, score) in enumerate(data)
    ]
    return asag.read_csv(write(tmp_path / name, "\n".join(lines) + "\n"))


def test_evaluate_fixed_and_calibrated(tmp_path: Path) -> None:
    test = _rows(
        tmp_path, "t.csv", [("the sky is blue", 2), ("sky blue", 1), ("grass", 0), ("the sky", 1)]
    )
    cal = _rows(tmp_path, "c.csv", [("the sky is blue today", 2), ("blue", 0.5), ("no idea", 0)])
    fixed = asag.evaluate(test, _overlap, _lengths)
    assert fixed.mapping == "fixed" and set(fixed.metrics) == {asag.JUDGE, asag.BASELINE}
    assert fixed.predicted[asag.JUDGE] == pytest.approx([0.8, 0.4, 0.0, 0.4])
    with pytest.raises(UserError, match="calibration file"):
        asag.evaluate(test, _overlap, _lengths, mapping="linear")

    calibrated = asag.evaluate(test, _overlap, _lengths, calibration=cal)
    assert calibrated.mapping == "linear" and calibrated.calibration_rows == 3
    # The line is fitted on the calibration rows alone: raw (1.0, 0.2, 0.0) -> human (1, .25, 0).
    slope, intercept = np.polyfit([1.0, 0.2, 0.0], [1.0, 0.25, 0.0], 1)
    assert calibrated.predicted[asag.JUDGE] == pytest.approx(
        list(np.clip(intercept + slope * np.array([0.8, 0.4, 0.0, 0.4]), 0, 1))
    )
    assert calibrated.predicted[asag.FLOOR] == pytest.approx([1.25 / 3] * 4)

    out = tmp_path / "out.csv"
    calibrated.write_csv(out)
    written = list(csv.DictReader(out.open()))
    assert list(written[0])[:6] == ["uid", *HEADER.split(",")]
    assert float(written[0]["predicted"]) == pytest.approx(
        2 * calibrated.predicted[asag.JUDGE][0], abs=1e-4
    )
    assert {"predicted_baseline", "judge_score", "baseline_cosine"} <= set(written[0])


# --- end to end, real models -----------------------------------------------------------------

PAPERCLIP = "Why does a paperclip scratch a mineral that a penny scratches?"
BULB = "What does a bulb need to light up?"
FIVE_ROWS = [  # written for this test: (question, reference, answer, human score)
    (PAPERCLIP, "A paperclip is harder than a penny.", "The paperclip is harder.", 1),
    (PAPERCLIP, "A paperclip is harder than a penny.", "I like minerals.", 0),
    (BULB, "The bulb must be in a closed path with the battery.", "A closed circuit.", 1),
    (BULB, "The bulb must be in a closed path with the battery.", "A switch.", 0),
    ("Why is lightning seen first?", "Light travels faster than sound.", "Light is faster.", 1),
]


def five_csv(path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*HEADER.split(","), "source"])
        for question, reference, answer, score in FIVE_ROWS:
            writer.writerow([question, reference, answer, score, 1, "written for this test"])
    return path


def test_eval_asag_end_to_end_with_smollm(tmp_path: Path) -> None:
    data = five_csv(tmp_path / "five.csv")
    out = tmp_path / "scored.csv"
    runner = CliRunner(env={"COLUMNS": "160"})
    args = ["eval", "asag", str(data), "--model", "smollm2-135m", "--limit", "4", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "LLM judge" in result.output and "embedding baseline" in result.output
    assert "Spearman rho" in result.output and "4 answers" in result.output
    rows = list(csv.DictReader(out.open()))
    # The seeded sample of 4, in file order, with every input column kept.
    expected = [FIVE_ROWS[i][2] for i in sorted(asag.sample(range(5), 4, seed=0))]
    assert [r["answer"] for r in rows] == expected
    assert all(r["source"] == "written for this test" for r in rows)
    assert all(0 <= float(r["predicted"]) <= 1 for r in rows)
    by_answer = {r["answer"]: float(r["baseline_cosine"]) for r in rows}
    assert by_answer["A closed circuit."] > by_answer["A switch."]


def test_eval_asag_cli_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = write(tmp_path / "bad.csv", "question,answer\nq,a\n")
    result = runner.invoke(app, ["eval", "asag", str(bad)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"{bad}: missing column(s) reference_answer, human_score, max_score; the header must "
        f"name {','.join(asag.REQUIRED_COLUMNS)} (other columns are ignored)"
    ]
    good = five_csv(tmp_path / "good.csv")
    same = runner.invoke(app, ["eval", "asag", str(good), "--calibrate", str(good)])
    assert same.exit_code == 1 and "is the file under test" in same.output


def test_score_cache_resumes_and_is_keyed_by_rubric(tmp_path: Path) -> None:
    """The cache only, with the small model: a cached row is never judged again."""
    cache = tmp_path / "cache.jsonl"
    rows = asag.read_csv(five_csv(tmp_path / "five.csv"))[:2]
    first = asag.judge_scorer("smollm2-135m", cache=cache)
    scores = [first(r) for r in rows]
    assert len(cache.read_text().splitlines()) == 2
    cache.write_text(cache.read_text() + '{"key": "cut sho')  # an interrupted write
    again = asag.judge_scorer("smollm2-135m", cache=cache)
    assert [again(r) for r in rows] == scores
    assert len(cache.read_text().splitlines()) == 3  # nothing new was judged (3: the cut line)
    changed = asag.GradedAnswer(
        line=9,
        question=rows[0].question,
        reference_answer=rows[0].reference_answer + " It is made of steel.",
        answer=rows[0].answer,
        human_score=1,
        max_score=1,
    )
    again(changed)  # another rubric: judged and recorded
    assert len(cache.read_text().splitlines()) == 4
