"""Pydantic validation errors explained: each becomes a Problem on the line of the key it is
about, with the path a person reads (``questions[melanoma-abcde].rubric.criteria[0].weight``) and
a fix, instead of ``questions.0.rubric.criteria.1.weight: greater_than``."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from interviewer.banks.model import Bank, _inner_type
from interviewer.banks.nodes import RULE_MESSAGES, column_of, line_of
from interviewer.banks.problem import DOCS, Problem, clip


def validation_problems(path: Path, root: Node, data: Any, err: ValidationError) -> list[Problem]:
    problems = []
    errors = err.errors(include_url=False)
    # A misspelt key is one mistake, not two: `wieght` is reported with "did you mean 'weight'?"
    # and the missing `weight` it causes is left out.
    misspelt = {
        (tuple(e["loc"][:-1]), hint)
        for e in errors
        if e["type"] == "extra_forbidden" and e["loc"]
        for hint in difflib.get_close_matches(str(e["loc"][-1]), _allowed(e["loc"][:-1]), n=1)
    }
    for error in errors:
        if error["type"] == "value_error" and RULE_MESSAGES.match(error["msg"]):
            continue  # already reported, with a better line, by rule_problems
        if error["type"] == "missing" and (tuple(error["loc"][:-1]), error["loc"][-1]) in misspelt:
            continue
        loc = tuple(error["loc"])
        node, _ = _locate(root, loc)
        _, parent = _locate(root, loc[:-1])
        in_flow = isinstance(parent, MappingNode) and bool(parent.flow_style)
        message, fix = _explain(error, data, in_flow)
        problems.append(Problem(path, line_of(node), column_of(node), message, fix))
    return problems


def _locate(root: Node, loc: tuple[int | str, ...]) -> tuple[Node, Node | None]:
    """The node to report along ``loc`` and the node found there (None if the path stops early).

    The reported node is the key for a mapping entry (its line is the one a person reads as 'the
    weight line') and the item for a list entry; a missing key reports its parent.
    """
    node, mark = root, root
    for part in loc:
        if isinstance(node, MappingNode):
            found = next(
                (
                    (k, v)
                    for k, v in reversed(node.value)
                    if isinstance(k, ScalarNode) and k.value == str(part)
                ),
                None,
            )
            if found is None:
                return mark, None
            mark, node = found
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = mark = node.value[part]
        else:
            return mark, None
    return mark, node


def _path(data: Any, loc: tuple[int | str, ...]) -> str:
    """``questions[melanoma-abcde].rubric.criteria[0].weight``: ids where the YAML has them."""
    text, current = "", data
    for part in loc:
        if isinstance(part, int) and isinstance(current, list) and 0 <= part < len(current):
            current = current[part]
            ident = current.get("id") if isinstance(current, dict) else None
            text += f"[{ident}]" if isinstance(ident, str) and ident.strip() else f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
            current = current.get(part) if isinstance(current, dict) else None
    return text


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Bank
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        if info is None:
            return None
        inner = _inner_type(info)
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return None
        model = inner
    return model


def _allowed(loc: tuple[int | str, ...]) -> list[str]:
    model = _model_at(tuple(loc))
    return sorted(model.model_fields) if model else []


_FIXES = {
    "string_too_short": "write some text here; it may not be empty",
    "string_too_long": "shorten it to at most {max_length} characters",
    "string_type": "write text; put it in quotes if YAML reads it as a number or yes/no",
    "int_type": "write a whole number",
    "int_parsing": "write a whole number",
    "int_from_float": "write a whole number, without a decimal part",
    "float_type": "write a number",
    "float_parsing": "write a number",
    "greater_than": "use a number greater than {gt}",
    "greater_than_equal": "use a number of at least {ge}",
    "less_than": "use a number less than {lt}",
    "less_than_equal": "use a number of at most {le}",
    "too_short": "give at least {min_length} item(s)",
    "list_type": "write a YAML list: one '- ' line per item",
    "model_type": "write `key: value` lines here",
    "model_attributes_type": "write `key: value` lines here",
    "dict_type": "write `key: value` lines here",
    "finite_number": "write an ordinary number",
}


_IDENTIFIER_FIX = (
    "use lowercase letters, digits, '-' and '_', starting with a letter or digit "
    "(e.g. melanoma-abcde)"
)


def _explain(error: Any, data: Any, in_flow: bool) -> tuple[str, str]:
    kind, loc = error["type"], tuple(error["loc"])
    ctx = {k: f"{v:g}" if isinstance(v, float) else v for k, v in (error.get("ctx") or {}).items()}
    where = _path(data, loc)
    if kind == "missing":
        parent = _path(data, loc[:-1]) or "the bank"
        field_name = loc[-1] if loc else "?"
        fix = f"add `{field_name}:` here (see {DOCS})"
        if field_name == "rubric":
            fix = f"add a `rubric:` with at least one criterion (see {DOCS})"
        return f"{parent}: missing required key {field_name!r}", fix
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        parent = _path(data, loc[:-1]) or "the bank"
        allowed = _allowed(loc[:-1])
        hint = difflib.get_close_matches(key, allowed, n=1)
        if in_flow and error.get("input") is None:
            # `{score: 1, descriptor: Some criteria, partly correct.}` splits at the comma.
            fix = 'text with a comma inside { } must be in quotes: "like, this"; '
        elif hint:
            fix = f"did you mean {hint[0]!r}? "
        else:
            fix = "remove it or correct its spelling; "
        fix += f"allowed keys here: {', '.join(allowed)}"
        return f"{parent}: unknown key {clip(key)!r}", fix
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if isinstance(value, str | int | float | bool) and kind != "value_error":
        message += f" (got {clip(repr(value))})"
    if kind == "string_pattern_mismatch":
        if str(ctx.get("pattern", "")).startswith("^[a-z0-9]"):
            fix = _IDENTIFIER_FIX
        else:
            fix = "use a language code such as en or en-GB"
    elif kind in _FIXES:
        try:
            fix = _FIXES[kind].format(**ctx)
        except (KeyError, IndexError):
            fix = _FIXES[kind]
    else:
        fix = f"correct the value as described (see {DOCS})"
    return f"{where}: {message}" if where else message, fix
