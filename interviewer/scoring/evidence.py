"""Evidence: the sentences of an answer that best support each rubric judgement, with times.

A reviewer does not take a score on trust: next to every criterion they see what the applicant
actually said, quoted *verbatim* (an exact substring of the stored transcript, never a
paraphrase or a re-joined list of words) and timed, so the recording can be played from there.

Three steps, all cheap next to the judge:

1. Split the transcript into sentences, keeping character offsets. Speech transcripts run on,
   so over-long sentences are cut again at clause punctuation (or, failing that, every
   ``MAX_WORDS`` words), and one- or two-word fragments ("Okay.") join their neighbour.
2. Align the recogniser's timed words (``Answer.words``) to the transcript text, word by word
   on their letters and digits only (the recogniser's word list and its text differ in
   punctuation and spacing), and give each sentence the start of its first timed word and the
   end of its last.
3. Embed sentences and rubric texts with all-MiniLM-L6-v2 and rank sentences by cosine
   similarity to each key point (and the criterion's description, and each red flag).

Similarity says "this sentence is about that point", not "the point is made": the judge
decides that. Evidence is for a human to check the judge quickly.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from interviewer import weights
from interviewer.banks.model import Question
from interviewer.config import get_settings  # noqa: F401  (sets HF_HUB_OFFLINE before loading)

MAX_WORDS = 40
MIN_WORDS = 3
TOP_K = 2
MIN_SIMILARITY = 0.15
"""Below this, all-MiniLM-L6-v2 cosines are noise between unrelated sentences."""

_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)|\n+")
_CLAUSE_END = re.compile(r"[,;:–—](?=\s)")
_ALIGN_WINDOW = 12


@dataclass(frozen=True)
class Sentence:
    text: str  # exactly transcript[char_start:char_end]
    char_start: int
    char_end: int
    start: float | None = None  # seconds from the answer's start, from the timed words
    end: float | None = None


@dataclass(frozen=True)
class Part:
    """One stored answer's words: a question's transcript may span the answer and follow-ups."""

    transcript: str
    words: Sequence[dict[str, Any]] = ()
    answer_id: int | None = None


@dataclass(frozen=True)
class Quote:
    quote: str
    start: float | None
    end: float | None
    similarity: float
    char_start: int
    char_end: int
    answer_id: int | None = None
    key_point: str | None = None  # the key point the sentence is closest to, if any

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["similarity"] = round(self.similarity, 4)
        for key in ("start", "end"):
            if data[key] is not None:
                data[key] = round(data[key], 3)
        return data


@dataclass(frozen=True)
class Evidence:
    criteria: dict[str, list[Quote]]
    key_points: dict[str, list[Quote]]
    red_flags: dict[str, list[Quote]]


# --- sentences and times ---------------------------------------------------------------------


def split_sentences(transcript: str) -> list[Sentence]:
    """Sentences of ``transcript`` with their offsets; each ``text`` is an exact substring."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(transcript):
        spans.append((start, match.end()))
        start = match.end()
    spans.append((start, len(transcript)))
    pieces: list[tuple[int, int]] = []
    for a, b in spans:
        a, b = _trim(transcript, a, b)
        if a < b:
            pieces.extend(_cut_long(transcript, a, b))
    merged: list[tuple[int, int]] = []
    for a, b in pieces:
        if merged and (
            _words(transcript, a, b) < MIN_WORDS or _words(transcript, *merged[-1]) < MIN_WORDS
        ):
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return [Sentence(transcript[a:b], a, b) for a, b in merged]


def _trim(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def _words(text: str, a: int, b: int) -> int:
    return len(_TOKEN.findall(text, a, b))


def _cut_long(text: str, a: int, b: int) -> list[tuple[int, int]]:
    """Cut a run-on sentence at clause punctuation, else every MAX_WORDS words."""
    if _words(text, a, b) <= MAX_WORDS:
        return [(a, b)]
    cuts = [m.end() for m in _CLAUSE_END.finditer(text, a, b)]
    out: list[tuple[int, int]] = []
    start = a
    for cut in cuts:
        if _words(text, start, cut) >= MAX_WORDS // 2:
            out.append(_trim(text, start, cut))
            start = cut
    out.append(_trim(text, start, b))
    final: list[tuple[int, int]] = []
    for x, y in out:
        tokens = list(_TOKEN.finditer(text, x, y))
        while len(tokens) > MAX_WORDS:
            cut = tokens[MAX_WORDS - 1].end()
            final.append((x, cut))
            x, _ = _trim(text, cut, y)
            tokens = list(_TOKEN.finditer(text, x, y))
        if x < y:
            final.append((x, y))
    return [(x, y) for x, y in final if x < y]


def align_words(transcript: str, words: Sequence[dict[str, Any]]) -> list[tuple[int, float, float]]:
    """(char offset, start, end) of every transcript token matched to a timed word.

    Greedy and forward-only: each word's letters are looked for in the next few transcript
    tokens, so a word the text lacks (or spells differently) is skipped without derailing the
    rest."""
    tokens = [(m.start(), m.group().lower()) for m in _TOKEN.finditer(transcript)]
    timed: list[tuple[int, float, float]] = []
    j = 0
    for word in words:
        parts = [t.lower() for t in _TOKEN.findall(str(word.get("word", "")))]
        try:
            start, end = float(word["start"]), float(word["end"])
        except (KeyError, TypeError, ValueError):
            continue
        if not parts or end < start:
            continue
        for k in range(j, min(j + _ALIGN_WINDOW, len(tokens))):
            if tokens[k][1] == parts[0]:
                for n in range(len(parts)):
                    if k + n < len(tokens) and tokens[k + n][1] == parts[n]:
                        timed.append((tokens[k + n][0], start, end))
                j = k + len(parts)
                break
    return timed


def timed_sentences(transcript: str, words: Sequence[dict[str, Any]] = ()) -> list[Sentence]:
    """Sentences with the time of their first and last aligned word (None when none aligned)."""
    sentences = split_sentences(transcript)
    timed = align_words(transcript, words) if words else []
    out = []
    for s in sentences:
        inside = [(a, b) for offset, a, b in timed if s.char_start <= offset < s.char_end]
        if inside:
            start = min(a for a, _ in inside)
            end = max(b for _, b in inside)
            out.append(Sentence(s.text, s.char_start, s.char_end, start, max(start, end)))
        else:
            out.append(s)
    return out


# --- embeddings --------------------------------------------------------------------------------


class EvidenceFinder:
    """Loads all-MiniLM-L6-v2 on first use (once, thread-safe) and ranks sentences.

    ``model_dir`` is the model directory root (as for ``weights.embedder_dir``), or a
    sentence-transformers folder itself."""

    def __init__(self, model_dir: Path | str | None = None) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self._lock = threading.Lock()
        self._model: Any = None

    def folder(self) -> Path:
        if self.model_dir is not None and (self.model_dir / "modules.json").is_file():
            return self.model_dir

        return weights.embedder_dir(self.model_dir)

    def load(self) -> EvidenceFinder:
        with self._lock:
            self._load_locked()
        return self

    def _load_locked(self) -> None:
        if self._model is None:
            import transformers
            from sentence_transformers import SentenceTransformer

            transformers.utils.logging.disable_progress_bar()

            self._model = SentenceTransformer(
                str(self.folder()), device="cpu", local_files_only=True
            )

    def embed(self, texts: Sequence[str]) -> Any:
        with self._lock:
            self._load_locked()
            return self._model.encode(
                list(texts), normalize_embeddings=True, convert_to_numpy=True, batch_size=32
            )

    def find(
        self,
        question: Question,
        parts: Sequence[Part] | str,
        *,
        top_k: int = TOP_K,
        min_similarity: float = MIN_SIMILARITY,
    ) -> Evidence:
        """Top sentences per criterion, key point and red flag, across all parts in order."""
        if isinstance(parts, str):
            parts = [Part(parts)]
        sentences = [(p, s) for p in parts for s in timed_sentences(p.transcript, p.words)]
        rubric = question.rubric
        queries: list[tuple[str, str, str | None, str]] = []  # (kind, id, criterion, text)
        for c in rubric.criteria:
            queries.append(("criterion", c.id, c.id, c.description))
            queries.extend(("key_point", k.id, c.id, k.text) for k in c.key_points)
        queries.extend(("red_flag", r.id, None, r.description) for r in rubric.red_flags)
        empty = Evidence(
            {c.id: [] for c in rubric.criteria},
            {k.id: [] for c in rubric.criteria for k in c.key_points},
            {r.id: [] for r in rubric.red_flags},
        )
        if not sentences:
            return empty
        vectors = self.embed([s.text for _, s in sentences] + [q[3] for q in queries])
        sims = vectors[: len(sentences)] @ vectors[len(sentences) :].T  # sentences x queries

        def quotes(columns: list[int], labels: list[str | None]) -> list[Quote]:
            best = sims[:, columns]
            top = best.max(axis=1)
            which = best.argmax(axis=1)
            order = sorted(range(len(sentences)), key=lambda i: (-float(top[i]), i))
            out = []
            for i in order[:top_k]:
                if float(top[i]) < min_similarity:
                    break
                part, s = sentences[i]
                out.append(
                    Quote(
                        s.text,
                        s.start,
                        s.end,
                        float(top[i]),
                        s.char_start,
                        s.char_end,
                        part.answer_id,
                        labels[int(which[i])],
                    )
                )
            return out

        index = {(kind, qid): n for n, (kind, qid, _, _) in enumerate(queries)}
        for c in rubric.criteria:
            columns = [index[("criterion", c.id)]] + [
                index[("key_point", k.id)] for k in c.key_points
            ]
            labels: list[str | None] = [None] + [k.id for k in c.key_points]
            empty.criteria[c.id].extend(quotes(columns, labels))
            for k in c.key_points:
                empty.key_points[k.id].extend(quotes([index[("key_point", k.id)]], [k.id]))
        for r in rubric.red_flags:
            empty.red_flags[r.id].extend(quotes([index[("red_flag", r.id)]], [None]))
        return empty
