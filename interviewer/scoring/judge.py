"""The rubric judge: a local instruction-tuned LLM answers Yes or No to each rubric point.

Small local models write unreliable free-form verdicts, but the probability they give to a
"Yes" versus a "No" as the next token separates good answers from bad ones (MODELS.md). So the
judge never generates text: it reads the question and the transcript (the *prefix*), then
one short *check* per rubric item ("Does the applicant's answer say this: ...?") after it, and
reads P(Yes) / (P(Yes) + P(No)) off the logits at each check's last position.

Speed (two CPU cores, where one answer's checks are ~470 tokens, ~200 of them the reference
check's, against a ~200-token prefix):
the checks are not run as padded batches, each with its own copy of the prefix's KV cache, but
as one *token tree* in a single forward pass: checks sharing a beginning ("Does the applicant's
answer say this, perhaps in other words: ...") share those tokens, each
token attends to the prefix and to its own ancestors only (a 4D attention mask, positions by
depth), so every check sees exactly what it would see alone. The prefix's opening (system
prompt, question) is the same for every answer to a question and for its two anchors: its KV
cache is computed once per question and kept (``STEM_CACHE_SIZE``). Only each check's last
position goes through the 150k-token output layer. A check's probability equals the one from
the whole prompt run alone up to rounding (tested on SmolLM2 in fp32 to 1e-4).

Checks per question: one per key point, one per red flag, one per level descriptor of a
criterion without key points, and the reference check (``checks_for``).

**Anchors.** Qwen2.5-1.5B says "Yes" far too easily, and by how much depends on the check: a
key point it rates 0.35 for a non-answer may get 0.6 for a weak answer that never makes it.
So every question is also judged, once per judge and cached, on two fixed answers: a
non-answer (``NULL_ANSWER``) and the question's own reference answer. Per criterion, the key
point coverage (see Level) is placed on the scale these two define: non-answer 0, and full
marks at ``ANCHOR_TOP`` (0.6) of the way to the reference. This is how the reference answer
guides the score. It is not shown in the prompt: there,
with abstract check wordings, weak answers got 0.56-0.73 on key points they never made
(dermatology demo, first question; strong 0.88-0.93); without it and with the literal wording,
0.13-0.50 against 0.50-0.76 for the strong answer, 0.11-0.35 for the non-answer and 0.62-0.89
for the reference. (The two changes were measured together, not one by one.)

**Level.** ``CriterionJudgement.level`` is the criterion's share mapped linearly onto its level
scores, where the share is the anchored key-point coverage, and coverage is the mean P(Yes) of
the better half of the criterion's key points (``_better_half``). A criterion without key
points is read from its level descriptors instead (P(descriptor fits), read as an expected
level), anchored the same way.

**Tuned on human grades** (``scripts/asag_tune.py``, the SAF train split: 2 answers of each
of its 26 questions, spread over the human scores). The first version (key points worded
"does the answer say this", all of them averaged, full marks only at the reference, 0.25 from
the descriptors) agreed poorly with the tutors (Pearson 0.19, QWK 0.09 on those 52 answers):
a small model misses points made in other words, and an answer never scores like the reference
its key points were cut from. Key points worded "perhaps in other words", the better half of
them, full marks at 0.6 of the reference, no descriptor share: 0.42 / 0.38 on the same answers;
each change alone helped less (docs/scoring.md, "Agreement with human graders", for the unseen
split).

**Red flags.** The model flags strong answers almost as readily as weak ones, so a red flag
counts only by how far its P(Yes) rises above the higher of its two anchors (neither the
non-answer nor the reference commits it): conservative, it rarely costs a strong answer.

**Reference check.** One check shows the model the reference answer and asks whether the
applicant's answer says what it says, perhaps in other words; anchored like the key points,
it counts ``REFERENCE_WEIGHT`` (0.25) beside the criteria. Added after the tuning above: on
the same train answers Pearson 0.44 -> 0.49, QWK 0.44 -> 0.45; on the unseen questions
0.42 -> 0.48 and 0.41 -> 0.47 (float32; docs/scoring.md). The key point checks still never see the
reference (see Anchors). Its ~200 tokens are read again for every answer (a third of an
answer's tokens): kept with the question's opening instead, hidden by the attention mask
from the answer and the other checks, it lost the agreement. Placed before the answer, which
then starts that many positions later, the key points read worse (train split r 0.49 -> 0.34,
QWK 0.45 -> 0.22); beside the answer at the same positions, the reference check read worse
(unseen r 0.48 -> 0.34, below the judge without it).

Question score: the weighted mean of criterion shares and the reference check (criteria 1,
reference ``REFERENCE_WEIGHT``) minus each red flag's penalty times its probability, clipped
to [0, 1]. Confidence per criterion: half how far its share lies from
the middle of the scale, half how well its checks separate the anchors (a spread of
``GOOD_SPREAD`` or more counts fully); per question, the weighted mean.

Determinism: no sampling, a dtype fixed per judge (and per machine, ``DTYPES``), a fixed
thread count per judge, a token tree built in rubric order, and a question's opening always
computed on its own (whether its cache was just made or kept), so the same question and
transcript give identical scores in a process.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from interviewer import weights
from interviewer.banks.model import Question
from interviewer.config import get_settings
from interviewer.scoring.dtype import judge_dtype
from interviewer.scoring.judge_checks import (
    NULL_ANSWER,
    SYSTEM_PROMPT,
    Check,
    CheckResult,
    checks_for,
    is_empty,
    level_checks,
    prefix_text,
)
from interviewer.scoring.judge_combine import (
    ANCHOR_TOP,
    GOOD_SPREAD,
    MIN_SPREAD,
    NO_ANSWER_CONFIDENCE,
    REFERENCE_WEIGHT,
    Anchors,
    AnswerJudgement,
    CriterionJudgement,
    Probabilities,
    RedFlagJudgement,
    _by_key,
    combine,
    criterion_judgement,
    empty_judgement,
)

# The judge's whole API stays importable from here: prompts and arithmetic live in judge_checks
# and judge_combine, the model runner below.
__all__ = [
    "ANCHOR_TOP",
    "DTYPES",
    "GOOD_SPREAD",
    "MAX_TRANSCRIPT_TOKENS",
    "MIN_SPREAD",
    "NO_ANSWER_CONFIDENCE",
    "NULL_ANSWER",
    "REFERENCE_WEIGHT",
    "STEM_CACHE_SIZE",
    "SYSTEM_PROMPT",
    "Anchors",
    "AnswerJudgement",
    "Check",
    "CheckResult",
    "CriterionJudgement",
    "Judge",
    "Probabilities",
    "RedFlagJudgement",
    "checks_for",
    "combine",
    "criterion_judgement",
    "empty_judgement",
    "is_empty",
    "level_checks",
    "prefix_text",
]

DTYPES = {"qwen2.5-1.5b": "float32", "smollm2-135m": "float32"}
"""The dtype each model was tuned in, which a judge built without a dtype keeps unless
``INTERVIEWER_JUDGE_DTYPE`` forces one or, on ``auto``, this machine multiplies bfloat16
matrices clearly faster (``scoring/dtype.py``, measured once per machine). Qwen's weights are
stored in bfloat16 (``weights.LLM_DTYPES``) and widened exactly on load: the CPU the judge was
tuned on (AVX512-BF16, no AMX) multiplies float32 ~1.5x faster, for 3.5 GB more memory; an AMD
EPYC bfloat16 2.3x faster, an Intel Xeon with AMX ~4x or more (``bench/gemm.py``). Scores differ
slightly between dtypes (docs/benchmarks.md, "Scoring speed"); a judge's dtype is fixed once
built, so scores stay identical across runs on one machine."""
MAX_TRANSCRIPT_TOKENS = 3000
"""About 20 minutes of speech; longer transcripts are cut (and the judgement says so)."""
STEM_CACHE_SIZE = 64
"""Question openings whose KV cache is kept (a few MB each): several banks' questions."""


# --- the judge -------------------------------------------------------------------------------


class Judge:
    """Loads the model on first use (once, thread-safe) and scores answers against rubrics.

    ``model_dir`` is the model directory root (as for ``weights.llm_dir``), or a transformers
    folder holding ``config.json`` directly (for experiments); default: the installed weights.
    ``threads`` defaults to the CPUs this process may use; ``dtype`` ("float32" or "bfloat16")
    to this machine's choice (``DTYPES``): benchmarks pass one to compare the two.
    """

    def __init__(
        self,
        model: str | None = None,
        model_dir: Path | str | None = None,
        *,
        threads: int | None = None,
        dtype: str | None = None,
    ) -> None:
        self.model_name = model or get_settings().scoring_model
        if self.model_name not in DTYPES:
            raise ValueError(f"unknown scoring model {self.model_name!r}; expected one of {DTYPES}")
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.threads = threads or max(1, len(os.sched_getaffinity(0)))
        self.dtype = dtype or judge_dtype(get_settings(), DTYPES[self.model_name])
        self.load_seconds: float | None = None
        self._lock = threading.Lock()
        self._loaded = False
        self._anchor_lock = threading.Lock()
        self._anchors: dict[str, Anchors] = {}
        self._stems: OrderedDict[str, tuple[list[int], list[tuple[Any, Any]]]] = OrderedDict()

    # -- loading --

    def folder(self) -> Path:
        if self.model_dir is not None and (self.model_dir / "config.json").is_file():
            return self.model_dir
        return weights.llm_dir(self.model_name, self.model_dir)

    def load(self) -> Judge:
        """Load now (the first ``score`` does it otherwise); returns self."""
        with self._lock:
            self._load_locked()
        return self

    def _load_locked(self) -> None:
        if self._loaded:
            return
        started = time.perf_counter()
        folder = self.folder()
        # Lazy: torch and transformers take seconds to import, and only a loaded judge needs them.
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        torch.set_num_threads(self.threads)
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        # Loaded as stored ("auto": the dtype in its config.json), then widened: loading bf16
        # files straight into float32 was as fast at best, and once took 11 s against 3.7 s.
        model = AutoModelForCausalLM.from_pretrained(folder, dtype="auto")
        model = model.to(getattr(torch, self.dtype))
        model.eval()
        self.model = model
        self._yes, self._no = _answer_token_ids(self.tokenizer)
        head = model.get_output_embeddings()
        rows = self._yes + self._no
        self._answer_weight = head.weight[rows].detach().float().clone()
        bias = getattr(head, "bias", None)
        self._answer_bias = None if bias is None else bias[rows].detach().float().clone()
        self._special = sorted(
            (t for t in self.tokenizer.get_added_vocab() if len(t) > 1), key=len, reverse=True
        )
        self._template_head, self._template_tail = self._split_template()
        self._loaded = True
        self.load_seconds = time.perf_counter() - started

    def _split_template(self) -> tuple[str, str]:
        """The chat template around the user message: the prefix ends inside the user turn, and
        every check ends with the rest of the template (end of turn, assistant header)."""
        marker = "\x00CHECK\x00"
        text = self.tokenizer.apply_chat_template(
            [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": marker},
            ],
            tokenize=False,
            add_generation_prompt=True,
        )
        head, tail = text.split(marker)
        return head, tail

    # -- scoring --

    def score(self, question: Question, transcript: str) -> AnswerJudgement:
        """Judge one answer. An answer without words scores 0 without calling the model."""
        if is_empty(transcript):
            return empty_judgement(question, self.model_name)
        started = time.perf_counter()
        checks = checks_for(question)
        anchors = self.anchors(question)
        results, prefix_tokens, truncated = self.run_checks(question, transcript, checks)
        judgement = combine(question, results, self.model_name, anchors)
        return replace(
            judgement,
            truncated=truncated,
            checks=len(checks),
            seconds=time.perf_counter() - started,
            prefix_tokens=prefix_tokens,
        )

    def anchors(self, question: Question) -> Anchors:
        """The question's anchors, computed on first use and kept (per judge, per rubric).

        Costs two judgements the first time a question is seen; ``warm`` does it ahead."""
        key = question.model_dump_json()
        with self._anchor_lock:
            cached = self._anchors.get(key)
            if cached is None:
                checks = checks_for(question)
                null, _, _ = self.run_checks(question, NULL_ANSWER, checks)
                ref, _, _ = self.run_checks(question, question.reference_answer, checks)
                cached = self._anchors[key] = Anchors(_by_key(null), _by_key(ref))
            return cached

    def pause_between_layers(self, checkpoint: Callable[[], object]) -> int:
        """Call ``checkpoint`` before each decoder layer (after ``load``); how many layers.

        One forward pass of the 1.5B model takes seconds on two cores, too long for live
        interviews to wait for (``interviewer.priority.yield_to_live``): pausing between its
        layers lets them have the CPU and the memory bus within a fraction of that."""
        layers = getattr(getattr(self.model, "model", None), "layers", None) or []

        def hook(*_: object) -> None:  # None: a pre-hook's return value would replace the input
            checkpoint()

        for layer in layers:
            layer.register_forward_pre_hook(hook)
        return len(layers)

    def has_anchors(self, question: Question) -> bool:
        with self._anchor_lock:
            return question.model_dump_json() in self._anchors

    def warm(self, question: Question) -> None:
        """Compute a question's anchors now (the worker does it while waiting for answers)."""
        self.anchors(question)

    def run_checks(
        self,
        question: Question,
        transcript: str,
        checks: Sequence[Check],
        *,
        reuse_cache: bool = True,
    ) -> tuple[list[CheckResult], int, bool]:
        """P(Yes) for each check; ``reuse_cache=False`` recomputes the whole prompt per check
        (slow: only for verifying that the cached path gives the same numbers)."""
        with self._lock:
            self._load_locked()
            prefix, truncated = self._prefix_ids(question, transcript)
            suffixes = [self._encode(check.text + self._template_tail) for check in checks]
            torch = self._torch
            with torch.inference_mode():
                if reuse_cache:
                    scores = self._packed(question, prefix, suffixes)
                else:
                    scores = [self._full(prefix + suffix) for suffix in suffixes]
        results = [
            CheckResult(check, probability, mass)
            for check, (probability, mass) in zip(checks, scores, strict=True)
        ]
        return results, len(prefix), truncated

    def _prefix_ids(self, question: Question, transcript: str) -> tuple[list[int], bool]:
        transcript = self._strip_special(transcript)
        ids = self._encode(transcript)
        truncated = len(ids) > MAX_TRANSCRIPT_TOKENS
        if truncated:
            transcript = self.tokenizer.decode(ids[:MAX_TRANSCRIPT_TOKENS]) + " [...]"
        text = self._template_head + self._strip_special(prefix_text(question, transcript))
        return self._encode(text), truncated

    def _strip_special(self, text: str) -> str:
        """A transcript must not smuggle in chat-template tokens such as ``<|im_end|>``."""
        for token in self._special:
            text = text.replace(token, " ")
        return text

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def _packed(
        self, question: Question, prefix: list[int], suffixes: list[list[int]]
    ) -> list[tuple[float, float]]:
        """All checks in one forward pass: the prefix after the question's cached opening, then
        the checks as a token tree (see the module docstring)."""
        torch = self._torch
        cache, stem = self._stem_cache(question, prefix)
        tree = _token_tree(suffixes)
        rest = len(prefix) - stem
        positions = list(range(stem, len(prefix))) + [len(prefix) + d - 1 for d in tree.depths]
        hidden = self.model.base_model(
            input_ids=torch.tensor([prefix[stem:] + tree.tokens]),
            attention_mask=_tree_mask(torch, stem, len(prefix), tree.parents)[None, None],
            position_ids=torch.tensor([positions]),
            cache=cache,
            use_cache=False,
            return_dict=True,
        ).last_hidden_state
        return self._yes_no(hidden[0, [rest + end for end in tree.ends]])

    def _stem_cache(self, question: Question, prefix: list[int]) -> tuple[Any, int]:
        """A fresh KV cache holding the question's opening (system prompt, question: whatever
        ``prefix`` shares with the prompt of an empty transcript, token for token), and its
        length. The opening is always computed alone, so its cache, and every score, is the
        same whether it was just computed or kept from an earlier answer."""
        from transformers import DynamicCache  # lazy, as in _load_locked

        torch = self._torch
        text = self._template_head + self._strip_special(prefix_text(question, ""))
        entry = self._stems.get(text)
        if entry is None:
            ids = self._encode(text)
            out = self.model.base_model(
                input_ids=torch.tensor([ids]), use_cache=True, return_dict=True
            )
            entry = (ids, [(layer.keys, layer.values) for layer in out.cache.layers])
            self._stems[text] = entry
            while len(self._stems) > STEM_CACHE_SIZE:
                self._stems.popitem(last=False)
        else:
            self._stems.move_to_end(text)
        ids, layers = entry
        shared = 0
        for a, b in zip(ids, prefix, strict=False):
            if a != b:
                break
            shared += 1
        if shared == 0:
            return None, 0
        cache = DynamicCache(config=self.model.config)
        for index, (keys, values) in enumerate(layers):
            cache.update(keys[:, :, :shared], values[:, :, :shared], index)
        return cache, shared

    def _full(self, ids: list[int]) -> tuple[float, float]:
        torch = self._torch
        hidden = self.model.base_model(input_ids=torch.tensor([ids]), return_dict=True)
        return self._yes_no(hidden.last_hidden_state[:, -1])[0]

    def _yes_no(self, hidden: Any) -> list[tuple[float, float]]:
        """(P(Yes) among Yes/No, P(Yes or No) among all tokens) per row of last hidden states.

        Only these rows go through the output layer: the full logits of every suffix position
        would cost more than the checks themselves (a 150k-token vocabulary). The Yes and No
        logits are computed in float32 from float32 copies of their output rows: in bfloat16 a
        logit near 20 is rounded to a multiple of 0.125, which moved P(Yes) by up to 0.03 when
        nothing but the order of the arithmetic changed. The full-vocabulary logits (only for
        the format mass, which no score uses) stay in the model's dtype."""
        torch = self._torch
        logits = self.model.get_output_embeddings()(hidden).float()
        answers = hidden.float() @ self._answer_weight.T
        if self._answer_bias is not None:
            answers = answers + self._answer_bias
        yes = torch.logsumexp(answers[:, : len(self._yes)], dim=-1)
        no = torch.logsumexp(answers[:, len(self._yes) :], dim=-1)
        p_yes = torch.sigmoid(yes - no)
        mass = torch.exp(torch.logaddexp(yes, no) - torch.logsumexp(logits, dim=-1))
        return [(float(p), float(m)) for p, m in zip(p_yes, mass, strict=True)]


def _answer_token_ids(tokenizer: Any) -> tuple[list[int], list[int]]:
    """First tokens of the spellings of Yes and No a model may start its reply with."""

    def ids(words: Sequence[str]) -> list[int]:
        found = []
        for word in words:
            tokens = tokenizer.encode(word, add_special_tokens=False)
            if tokens and tokens[0] not in found and tokenizer.decode(tokens[:1]).strip():
                found.append(tokens[0])
        return found

    yes, no = ids(["Yes", " Yes", "yes", " yes", "YES"]), ids(["No", " No", "no", " no", "NO"])
    if not yes or not no or set(yes) & set(no):
        raise RuntimeError("the scoring model's tokenizer has no distinct Yes/No tokens")
    return yes, no


@dataclass(frozen=True)
class _TokenTree:
    """Token sequences merged on their common beginnings, nodes in insertion order (a parent
    always before its children)."""

    tokens: list[int]
    parents: list[int]  # -1: the node follows the prefix directly
    depths: list[int]  # 1 for a first token
    ends: list[int]  # per sequence, the node of its last token


def _token_tree(sequences: Sequence[Sequence[int]]) -> _TokenTree:
    tree = _TokenTree([], [], [], [])
    children: dict[tuple[int, int], int] = {}
    for sequence in sequences:
        if not sequence:
            raise ValueError("empty check")
        node = -1
        for depth, token in enumerate(sequence, 1):
            child = children.get((node, token))
            if child is None:
                child = children[(node, token)] = len(tree.tokens)
                tree.tokens.append(token)
                tree.parents.append(node)
                tree.depths.append(depth)
            node = child
        tree.ends.append(node)
    return tree


def _tree_mask(torch: Any, stem: int, prefix: int, parents: Sequence[int]) -> Any:
    """Who attends to whom, for the prefix after its first ``stem`` (cached) tokens followed by
    a token tree: the prefix causally, each tree node to the whole prefix, its ancestors and
    itself. Rows: the new tokens; columns: every token including the cached ones."""
    rest, nodes = prefix - stem, len(parents)
    mask = torch.zeros(rest + nodes, prefix + nodes, dtype=torch.bool)
    mask[:rest, :prefix] = torch.ones(rest, prefix, dtype=torch.bool).tril(diagonal=stem)
    mask[rest:, :prefix] = True
    tree = mask[rest:, prefix:]
    for node, parent in enumerate(parents):
        if parent >= 0:
            tree[node] = tree[parent]
        tree[node, node] = True
    return mask
