"""Answers that are not the applicant's own words: shared between applicants, or the bank's
reference answer read out.

* Near-duplicates across applicants of one opening: all-MiniLM-L6-v2 embeddings of the two
  transcripts (same question) with cosine >= ``duplicate_similarity``. Two good answers to one
  question share content, so the default is high and both answers must be substantial
  (``duplicate_min_words``); the evidence quotes the longest word-for-word run they share.
* Reference answer almost verbatim: the share of the answer's word n-grams that also occur in
  the reference (containment, robust to whisper's punctuation and casing) *and* embedding
  similarity. A strong answer covers the reference's points in its own words, so the n-gram
  containment, not the meaning, is what separates reading the key from knowing the subject.

Transcripts come from whisper, so texts are compared after lowercasing and dropping
punctuation; numbers stay as whisper wrote them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from interviewer import weights
from interviewer.proctoring.thresholds import ProctoringThresholds

Embed = Callable[[Sequence[str]], np.ndarray]  # texts -> unit-norm rows
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
QUOTE_MAX_WORDS = 30


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(words: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def containment(answer: Sequence[str], reference: Sequence[str], n: int) -> float:
    """Share of the answer's n-grams found in the reference (0 when the answer is too short)."""
    mine = ngrams(answer, n)
    if not mine:
        return 0.0
    return len(mine & ngrams(reference, n)) / len(mine)


def longest_shared_run(a: Sequence[str], b: Sequence[str]) -> list[str]:
    match = SequenceMatcher(None, list(a), list(b), autojunk=False).find_longest_match()
    return list(a[match.a : match.a + match.size])


def _quote(words: list[str]) -> str:
    text = " ".join(words[:QUOTE_MAX_WORDS])
    return text + (" …" if len(words) > QUOTE_MAX_WORDS else "")


# --- embeddings ---------------------------------------------------------------------------------

_load_lock = threading.Lock()


@lru_cache(maxsize=2)
def _model(folder: str) -> Any:
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.utils.logging.disable_progress_bar()
    return SentenceTransformer(folder, device="cpu", local_files_only=True)


def embedder(model_dir: Path | None = None) -> Embed:
    """all-MiniLM-L6-v2 from the model directory (``interviewer models install``)."""

    folder = str(weights.embedder_dir(model_dir))
    lock = threading.Lock()

    def embed(texts: Sequence[str]) -> np.ndarray:
        with _load_lock:
            model = _model(folder)
        with lock:
            return np.asarray(
                model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)
            )

    return embed


# --- detectors ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerText:
    interview_id: int
    applicant_id: int
    answer_id: int
    question_id: str
    text: str


@dataclass
class DuplicateMatch:
    answer: AnswerText
    other: AnswerText
    similarity: float
    overlap: float  # share of this answer's 4-grams in the other
    shared: str  # the longest word-for-word run, quoted

    def evidence(self) -> dict[str, Any]:
        return {
            "answer_id": self.answer.answer_id,
            "other_interview_id": self.other.interview_id,
            "other_answer_id": self.other.answer_id,
            "similarity": round(self.similarity, 3),
            "ngram_overlap": round(self.overlap, 3),
            "longest_shared_words": self.shared,
        }


def find_duplicates(
    mine: Sequence[AnswerText],
    others: Sequence[AnswerText],
    thresholds: ProctoringThresholds,
    embed: Embed,
) -> list[DuplicateMatch]:
    """For each of ``mine``, the most similar answer to the same question by another applicant
    when it is at least ``duplicate_similarity`` similar."""
    n = thresholds.reference_ngram
    long_enough = [a for a in mine if len(tokens(a.text)) >= thresholds.duplicate_min_words]
    pool = [o for o in others if len(tokens(o.text)) >= thresholds.duplicate_min_words]
    pairs_by_answer = {
        a.answer_id: [
            o
            for o in pool
            if o.question_id == a.question_id
            and o.applicant_id != a.applicant_id
            and o.interview_id != a.interview_id
        ]
        for a in long_enough
    }
    texts = {a.answer_id: a.text for a in long_enough}
    for candidates in pairs_by_answer.values():
        texts.update({o.answer_id: o.text for o in candidates})
    if not any(pairs_by_answer.values()):
        return []
    ids = list(texts)
    vectors = dict(zip(ids, embed([texts[i] for i in ids]), strict=True))
    matches = []
    for answer in long_enough:
        candidates = pairs_by_answer[answer.answer_id]
        if not candidates:
            continue
        sims = [float(vectors[answer.answer_id] @ vectors[o.answer_id]) for o in candidates]
        best = int(np.argmax(sims))
        if sims[best] < thresholds.duplicate_similarity:
            continue
        other = candidates[best]
        a_words, o_words = tokens(answer.text), tokens(other.text)
        matches.append(
            DuplicateMatch(
                answer=answer,
                other=other,
                similarity=sims[best],
                overlap=containment(a_words, o_words, n),
                shared=_quote(longest_shared_run(a_words, o_words)),
            )
        )
    return matches


@dataclass
class ReferenceMatch:
    answer: AnswerText
    overlap: float
    similarity: float
    shared: str

    def evidence(self) -> dict[str, Any]:
        return {
            "answer_id": self.answer.answer_id,
            "ngram_overlap": round(self.overlap, 3),
            "similarity": round(self.similarity, 3),
            "longest_shared_words": self.shared,
        }


def reference_matches(
    mine: Sequence[AnswerText],
    references: dict[str, str],
    thresholds: ProctoringThresholds,
    embed: Embed | None,
) -> list[ReferenceMatch]:
    """Answers whose n-grams come mostly from the bank's reference answer.

    The cheap n-gram test runs first; the embedding (when ``embed`` is given) is only computed
    for answers that pass it, as a check that the overlap is not a few stock phrases.
    """
    n = thresholds.reference_ngram
    found = []
    for answer in mine:
        reference = references.get(answer.question_id)
        words = tokens(answer.text)
        if not reference or len(words) < thresholds.reference_min_words:
            continue
        ref_words = tokens(reference)
        overlap = containment(words, ref_words, n)
        if overlap < thresholds.reference_overlap_warning:
            continue
        similarity = 1.0
        if embed is not None:
            a, r = embed([answer.text, reference])
            similarity = float(a @ r)
            if similarity < thresholds.reference_similarity:
                continue
        found.append(
            ReferenceMatch(
                answer=answer,
                overlap=overlap,
                similarity=similarity,
                shared=_quote(longest_shared_run(words, ref_words)),
            )
        )
    return found


# --- one voice in several interviews ----------------------------------------------------------


@dataclass(frozen=True)
class StoredVoice:
    """An interview's voice print (store.models.VoicePrint) with whose interview it is."""

    interview_id: int
    applicant_id: int
    opening_id: int
    answer_id: int | None
    vector: np.ndarray  # unit length


@dataclass
class VoiceMatch:
    other: StoredVoice
    similarity: float
    same_applicant: bool  # a re-take by the same applicant record, not another name

    def evidence(self, answer_id: int | None) -> dict[str, Any]:
        return {
            "answer_id": answer_id,
            "other_interview_id": self.other.interview_id,
            "other_opening_id": self.other.opening_id,
            "other_answer_id": self.other.answer_id,
            "similarity": round(self.similarity, 3),
            "same_applicant": self.same_applicant,
        }


def voice_duplicates(
    mine: StoredVoice, others: Sequence[StoredVoice], thresholds: ProctoringThresholds
) -> list[VoiceMatch]:
    """Other interviews whose voice print is at least ``duplicate_voice_similarity`` to this
    one's, most similar first: one person interviewing under several names, or again.

    Each other interview is listed once; a recruiter compares the two recordings, so the
    evidence names both answers the prints came from.
    """
    found = []
    for other in others:
        if other.interview_id == mine.interview_id:
            continue
        similarity = float(mine.vector @ other.vector)
        if similarity >= thresholds.duplicate_voice_similarity:
            same = other.applicant_id == mine.applicant_id
            found.append(VoiceMatch(other=other, similarity=similarity, same_applicant=same))
    return sorted(found, key=lambda m: -m.similarity)
