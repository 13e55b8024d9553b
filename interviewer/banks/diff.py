"""What changed between two versions of a bank, for a person reviewing before publishing: per
question and per criterion (``criterion accuracy › weight``), with word-level diffs of texts,
plus the plain unified diff of the YAML."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Change:
    """One difference a person reads: ``what`` changed (``added``/``removed``/``changed``/
    ``moved``) at ``where`` (e.g. ``criterion accuracy › weight``)."""

    kind: str
    where: str
    old: Any = None
    new: Any = None

    @property
    def words(self) -> list[tuple[str, str]] | None:
        """Word-level diff of two texts: [(op, text)] with op in '=', '-', '+'."""
        if not (isinstance(self.old, str) and isinstance(self.new, str)):
            return None
        return word_diff(self.old, self.new)


@dataclass
class Section:
    title: str
    status: str  # added | removed | changed
    changes: list[Change] = field(default_factory=list)


def word_diff(old: str, new: str) -> list[tuple[str, str]]:
    token = re.compile(r"\w+|[^\w\s]+|\s+")
    a, b = token.findall(old), token.findall(new)
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("=", "".join(a[i1:i2])))
        else:
            if i2 > i1:
                out.append(("-", "".join(a[i1:i2])))
            if j2 > j1:
                out.append(("+", "".join(b[j1:j2])))
    return out


_BANK_FIELDS = ("title", "domain", "version", "language", "description", "practice_question")


_QUESTION_FIELDS = ("prompt", "time_limit_s", "reference_answer")


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _num(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _fields(prefix: str, old: dict, new: dict, names: tuple[str, ...]) -> list[Change]:
    out = []
    for name in names:
        a, b = _num(old.get(name)), _num(new.get(name))
        if a != b:
            out.append(Change("changed", f"{prefix}{name.replace('_', ' ')}", a, b))
    return out


def _keyed(items: list[dict], key: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for i, item in enumerate(items):
        k = str(item.get(key, f"#{i + 1}"))
        while k in out:
            k += "'"
        out[k] = item
    return out


def _list_changes(
    prefix: str,
    kind: str,
    old: list[dict],
    new: list[dict],
    key: str,
    fields: tuple[str, ...],
    describe: Any,
) -> list[Change]:
    a, b = _keyed(old, key), _keyed(new, key)
    out = []
    for k, item in a.items():
        if k not in b:
            out.append(Change("removed", f"{prefix}{kind} {k}", describe(item), None))
    for k, item in b.items():
        if k not in a:
            out.append(Change("added", f"{prefix}{kind} {k}", None, describe(item)))
        else:
            out += _fields(f"{prefix}{kind} {k} › ", a[k], item, fields)
    common = [k for k in a if k in b]
    if common != [k for k in b if k in a]:
        out.append(
            Change(
                "moved",
                f"{prefix}{kind}s reordered",
                ", ".join(common),
                ", ".join(k for k in b if k in a),
            )
        )
    return out


def _criterion_text(c: dict) -> str:
    levels = ", ".join(f"{lv.get('score')}: {lv.get('descriptor')}" for lv in _l(c.get("levels")))
    return f"{c.get('description')} (weight {c.get('weight')}; levels {levels})"


def _question_changes(old: dict, new: dict) -> list[Change]:
    out = _fields("", old, new, _QUESTION_FIELDS)
    out += _list_changes(
        "",
        "follow-up on",
        _l(old.get("follow_ups")),
        _l(new.get("follow_ups")),
        "trigger",
        ("prompt",),
        lambda f: f.get("prompt"),
    )
    old_r, new_r = _d(old.get("rubric")), _d(new.get("rubric"))
    old_c, new_c = _keyed(_l(old_r.get("criteria")), "id"), _keyed(_l(new_r.get("criteria")), "id")
    out += _list_changes(
        "",
        "criterion",
        list(old_c.values()),
        list(new_c.values()),
        "id",
        ("description", "weight"),
        _criterion_text,
    )
    for cid in old_c.keys() & new_c.keys():
        a, b = old_c[cid], new_c[cid]
        pre = f"criterion {cid} › "
        levels_a = {str(lv.get("score")): lv for lv in _l(a.get("levels"))}
        levels_b = {str(lv.get("score")): lv for lv in _l(b.get("levels"))}
        out += _list_changes(
            pre,
            "level",
            list(levels_a.values()),
            list(levels_b.values()),
            "score",
            ("descriptor",),
            lambda lv: lv.get("descriptor"),
        )
        out += _list_changes(
            pre,
            "key point",
            _l(a.get("key_points")),
            _l(b.get("key_points")),
            "id",
            ("text",),
            lambda kp: kp.get("text"),
        )
    out += _list_changes(
        "",
        "red flag",
        _l(old_r.get("red_flags")),
        _l(new_r.get("red_flags")),
        "id",
        ("description", "penalty"),
        lambda r: f"{r.get('description')} (penalty {r.get('penalty', 0.25)})",
    )
    return [c for c in out if c.kind != "moved" or c.old != c.new]


def diff_banks(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[Section]:
    """Per-question, per-criterion differences between two banks' data (either may be partly
    invalid: a draft that does not validate still diffs by what it holds)."""
    old, new = _d(old), _d(new)
    sections = []
    details = _fields("", old, new, _BANK_FIELDS)
    if details:
        sections.append(Section("Bank details", "changed", details))
    qa, qb = _keyed(_l(old.get("questions")), "id"), _keyed(_l(new.get("questions")), "id")
    for qid, q in qa.items():
        if qid not in qb:
            sections.append(
                Section(
                    f"Question {qid}",
                    "removed",
                    [Change("removed", "prompt", q.get("prompt"), None)],
                )
            )
    for qid, q in qb.items():
        if qid not in qa:
            changes = [Change("added", "prompt", None, q.get("prompt"))]
            for c in _l(_d(q.get("rubric")).get("criteria")):
                text = _criterion_text(c)
                changes.append(Change("added", f"criterion {c.get('id')}", None, text))
            sections.append(Section(f"Question {qid}", "added", changes))
        else:
            changes = _question_changes(qa[qid], q)
            if changes:
                sections.append(Section(f"Question {qid}", "changed", changes))
    order_a = [k for k in qa if k in qb]
    order_b = [k for k in qb if k in qa]
    if order_a != order_b:
        sections.append(
            Section(
                "Question order",
                "changed",
                [Change("moved", "questions reordered", ", ".join(order_a), ", ".join(order_b))],
            )
        )
    return sections


def unified_diff(old_text: str, new_text: str, old_label: str, new_label: str) -> str:
    return "".join(
        difflib.unified_diff(
            old_text.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile=old_label,
            tofile=new_label,
        )
    )
