"""Text signals with the real all-MiniLM-L6-v2: near-duplicates across applicants, reference read
out. The texts are the software-engineering bank's reference and demo answers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from interviewer.proctoring import duplicates as dup
from interviewer.proctoring.events import EventKind, Severity, severity_of
from interviewer.proctoring.thresholds import ProctoringThresholds

BANKS = Path(__file__).parent.parent / "question_banks"
QID = "idempotent-payments"
T = ProctoringThresholds()


@pytest.fixture(scope="module")
def embed(model_dir: Path) -> dup.Embed:
    return dup.embedder(model_dir)


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    bank = yaml.safe_load((BANKS / "software-engineering.yaml").read_text())
    demo = yaml.safe_load((BANKS / "demo_answers" / "software-engineering.yaml").read_text())
    question = next(q for q in bank["questions"] if q["id"] == QID)
    return {"reference": question["reference_answer"], **demo["answers"][QID]}


def answer(interview: int, text: str, question: str = QID) -> dup.AnswerText:
    return dup.AnswerText(interview, 100 + interview, 1000 + interview, question, text)


def as_whisper_heard(text: str) -> str:
    """Lowercased, commas gone, one word misheard: what a read-out text looks like transcribed."""
    words = text.lower().replace(",", "").replace(".", "").split()
    words[len(words) // 2] = "the"
    return " ".join(words)


def test_a_copied_answer_is_a_near_duplicate_and_different_answers_are_not(
    embed: dup.Embed, texts: dict[str, str]
) -> None:
    mine = [answer(1, as_whisper_heard(texts["strong"]))]
    others = [answer(2, texts["strong"]), answer(3, texts["average"]), answer(4, texts["weak"])]
    found = dup.find_duplicates(mine, others, T, embed)
    assert len(found) == 1
    match = found[0]
    assert match.other.interview_id == 2
    assert match.similarity >= T.duplicate_high_similarity
    assert severity_of(EventKind.duplicate_answer, match.similarity, T) is Severity.high
    assert len(match.evidence()["longest_shared_words"].split()) >= 10

    # the strong answer against the average and weak ones: same topic, not a copy
    assert dup.find_duplicates([answer(1, texts["strong"])], others[1:], T, embed) == []
    # the same applicant (a second interview) and other questions are never compared
    same_person = dup.AnswerText(5, 101, 1005, QID, texts["strong"])
    assert dup.find_duplicates(mine, [same_person], T, embed) == []
    assert dup.find_duplicates(mine, [answer(6, texts["strong"], "other-q")], T, embed) == []


def test_reading_the_reference_answer_is_flagged_and_a_strong_answer_is_not(
    embed: dup.Embed, texts: dict[str, str]
) -> None:
    references = {QID: texts["reference"]}
    read_out = answer(1, as_whisper_heard(texts["reference"]))
    found = dup.reference_matches([read_out], references, T, embed)
    assert len(found) == 1
    assert found[0].overlap >= T.reference_overlap_high
    assert severity_of(EventKind.reference_match, found[0].overlap, T) is Severity.high

    for level in ("strong", "average", "weak"):
        assert dup.reference_matches([answer(2, texts[level])], references, T, embed) == []


def test_ngram_containment_ignores_case_and_punctuation() -> None:
    a = dup.tokens("The server stores the key, with the result.")
    b = dup.tokens("the server stores the key with the result and more")
    assert dup.containment(a, b, 4) == 1.0
    assert dup.containment(dup.tokens("too short"), b, 4) == 0.0


def test_a_camera_flag_says_what_it_measured_and_how_sure_it_is() -> None:
    """The evidence analyze.py stores for the trained face model's flags becomes one line on the
    applicant page: the strongest reading, the threshold it crossed, how sure."""
    from interviewer.reports import describe_event

    away = describe_event(
        {"kind": "looking_away", "evidence": {"max_yaw_deg": 52.4, "yaw_threshold_deg": 30}}
    )
    assert "52°" in away and "30°" in away and "how sure: high" in away
    barely = describe_event(
        {"kind": "looking_away", "evidence": {"max_yaw_deg": 32.0, "yaw_threshold_deg": 30}}
    )
    assert "how sure: low" in barely
    other = describe_event(
        {"kind": "different_person", "evidence": {"max_distance": 0.75, "same_person_below": 0.6}}
    )
    assert "0.75" in other and "0.6" in other and "how sure: medium" in other
