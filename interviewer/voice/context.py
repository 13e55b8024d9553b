"""What whisper is told before it hears an answer: the question and its field's words.

A generic speech model spells a field's words the way everyday English would ("Steven's Johnson",
"hear say"); whisper's prompt (openai-whisper's and faster-whisper's ``initial_prompt``) biases
its decoding toward the words it has just "read". The context is the question as asked plus the
rubric's key terms, picked from the bank's own text so no bank needs a new field. How the prompt
is kept from putting words in the applicant's mouth lives in ``voice/stt.py`` (the guards).
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import re
from pathlib import Path

from interviewer.banks.model import Bank, Question
from interviewer.interview import Ask

MAX_TERMS = 24
"""Whisper reads at most 223 prompt tokens (and keeps the last ones): the question and this many
terms stay well inside that."""

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'\u2019]*(?:-[A-Za-z0-9][A-Za-z0-9'\u2019]*)*")
_SENTENCE_END = re.compile(r"[.!?:;]\s*$")


@functools.cache
def _gpt2() -> object | None:
    """Whisper's English BPE (tiktoken, read from openai-whisper's own asset file without
    importing openai-whisper, which would load torch): a word it splits into several pieces is
    one it rarely saw, which is what a field's word is. None when the file is absent."""
    import tiktoken  # lazy: only when a bank's terms are first picked

    spec = importlib.util.find_spec("whisper")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "assets" / "gpt2.tiktoken"
    if not path.is_file():
        return None
    ranks = {}
    for line in path.read_text().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(
        name="gpt2",
        explicit_n_vocab=len(ranks),
        pat_str=r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
        mergeable_ranks=ranks,
        special_tokens={},
    )


def _pieces(word: str) -> int:
    """How many BPE pieces whisper's vocabulary needs for the word (after a space)."""
    enc = _gpt2()
    if enc is None:
        return 1 + len(word) // 8
    return len(enc.encode(" " + word.lower()))  # type: ignore[attr-defined]


def _candidates(text: str) -> list[tuple[str, bool]]:
    """Words of ``text`` with whether each is written as a name (capitalised inside a sentence,
    or an acronym): "Breslow", "EBITDA", "Stevens-Johnson"."""
    out: list[tuple[str, bool]] = []
    for m in _WORD.finditer(text):
        word = m.group().strip("'\u2019")
        before = text[: m.start()].rstrip()
        sentence_start = not before or bool(_SENTENCE_END.search(before))
        acronym = len(word) >= 2 and sum(c.isupper() for c in word) >= 2
        named = acronym or (word[0].isupper() and not sentence_start)
        out.append((word, named))
    return out


def key_terms(question: Question, limit: int = MAX_TERMS) -> list[str]:
    """The question's field words, rarest first: names and acronyms from its reference answer
    and rubric, and words whisper's vocabulary splits into three or more pieces (a rare word;
    a hyphenated word by its rarest part, so "four-year" is not one).
    The question's own prompt is left out: it is in the context as a whole already."""
    texts = [question.reference_answer]
    for criterion in question.rubric.criteria:
        texts.append(criterion.description)
        texts.extend(k.text for k in criterion.key_points)
    scored: dict[str, tuple[int, int]] = {}
    for text in texts:
        for order, (word, named) in enumerate(_candidates(text)):
            if len(word) < 3 and not named:
                continue
            key = word if named else word.lower()
            if key.lower() in {k.lower() for k in scored}:
                continue
            if re.search(r"['\u2019](s|d|ll|re|ve|m|t)$", word, re.IGNORECASE):
                continue  # "acquirer's", "I'd": the word without it is a candidate too
            pieces = max(_pieces(part) for part in word.split("-"))
            if named and pieces < 2:
                continue  # "US", "Code", "Article": whisper writes them right anyway
            if named or pieces >= 3:
                scored[key] = (pieces + (2 if named else 0), -order)
    ranked = sorted(scored, key=lambda w: scored[w], reverse=True)
    return ranked[:limit]


def context_text(question_text: str, terms: list[str]) -> str:
    """The prompt: the terms as a glossary line, then the question (whisper weighs the end of
    its prompt most, and an answer follows a question naturally)."""
    glossary = f"Glossary: {', '.join(terms)}." if terms else ""
    return " ".join(part for part in (glossary, question_text.strip()) if part)


def context_for(bank: Bank, ask: Ask) -> str | None:
    """The context of the answer to ``ask``: its spoken text and its question's key terms; the
    practice question (not in the bank's questions) gets its text alone."""
    try:
        question = bank.question(ask.question_id)
    except KeyError:
        return context_text(ask.text, []) or None
    return context_text(ask.text, key_terms(question)) or None
