"""Checks on the composed YAML node tree, where every key still has its line.

Some rules (unique ids, follow-up triggers, distinct level scores) are checked here as well as in
the model validators of :mod:`interviewer.banks.model`: pydantic stops at the first duplicate and
points at the whole rubric, while a domain lead wants every duplicate with the line of its
``id:``. The pydantic messages for those rules (``RULE_MESSAGES``) are then dropped, so each
problem is reported once. The same tree reveals duplicate keys, which PyYAML otherwise resolves
silently to the last one, dropping half a rubric without a word.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from pathlib import Path

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from interviewer.banks.problem import Problem, clip


def line_of(node: Node) -> int:
    return node.start_mark.line + 1


def column_of(node: Node) -> int:
    return node.start_mark.column + 1


def key_node(node: Node | None, key: str) -> Node | None:
    """The last key node called ``key`` (the one PyYAML keeps when a key is duplicated)."""
    if isinstance(node, MappingNode):
        for k, _ in reversed(node.value):
            if isinstance(k, ScalarNode) and k.value == key:
                return k
    return None


def value_node(node: Node | None, key: str) -> Node | None:
    if isinstance(node, MappingNode):
        for k, v in reversed(node.value):
            if isinstance(k, ScalarNode) and k.value == key:
                return v
    return None


def _items(node: Node | None) -> list[Node]:
    return list(node.value) if isinstance(node, SequenceNode) else []


def _walk(root: Node) -> Iterator[Node]:
    """Every node, without recursion (the composer already bounds depth, but cheaply)."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, MappingNode):
            for k, v in node.value:
                stack.extend((v, k))
        elif isinstance(node, SequenceNode):
            stack.extend(reversed(node.value))


def _scalar(node: Node | None) -> str | None:
    return node.value.strip() if isinstance(node, ScalarNode) else None


def duplicate_keys(path: Path, root: Node) -> list[Problem]:
    problems = []
    for node in _walk(root):
        if not isinstance(node, MappingNode):
            continue
        seen: dict[tuple[str, str], Node] = {}
        for k, _ in node.value:
            if not isinstance(k, ScalarNode):
                continue
            first = seen.setdefault((k.tag, k.value), k)
            if first is not k:
                problems.append(
                    Problem(
                        path,
                        line_of(k),
                        column_of(k),
                        f"duplicate key {clip(k.value)!r} (first on line {line_of(first)}); "
                        "YAML would silently keep only this one",
                        "delete one of the two, or merge them",
                    )
                )
    return problems


RULE_MESSAGES = re.compile(
    r"^Value error, (duplicate (question|criterion|key point|red flag) id "
    r"|question .*: follow-up trigger "
    r"|criterion .*: level scores must be distinct)"
)


def rule_problems(path: Path, root: Node) -> list[Problem]:
    problems: list[Problem] = []
    questions = _items(value_node(root, "questions"))
    problems += _duplicate_ids(path, "question", "the bank", questions)
    for question in questions:
        rubric = value_node(question, "rubric")
        criteria = _items(value_node(rubric, "criteria"))
        key_points = [kp for c in criteria for kp in _items(value_node(c, "key_points"))]
        problems += _duplicate_ids(path, "criterion", "a rubric", criteria)
        problems += _duplicate_ids(path, "key point", "a question's rubric", key_points)
        red_flags = _items(value_node(rubric, "red_flags"))
        problems += _duplicate_ids(path, "red flag", "a rubric", red_flags)
        for criterion in criteria:
            problems += _duplicate_scores(path, _items(value_node(criterion, "levels")))
        if isinstance(rubric, MappingNode):
            problems += _unknown_triggers(path, question, key_points)
    return problems


def _repeated(items: list[Node], key: str) -> Iterator[tuple[str, Node, int]]:
    """Each item whose ``key`` repeats an earlier item's: (value, its key node, first line)."""
    first: dict[str, int] = {}
    for item in items:
        text = _scalar(value_node(item, key))
        node = key_node(item, key)
        if not text or node is None:
            continue
        if text in first:
            yield text, node, first[text]
        else:
            first[text] = line_of(node)


def _duplicate_ids(path: Path, kind: str, scope: str, items: list[Node]) -> list[Problem]:
    return [
        Problem(
            path,
            line_of(key),
            column_of(key),
            f"duplicate {kind} id {ident!r} (first on line {first})",
            f"rename one of them: {kind} ids must be unique within {scope}",
        )
        for ident, key, first in _repeated(items, "id")
    ]


def _duplicate_scores(path: Path, levels: list[Node]) -> list[Problem]:
    return [
        Problem(
            path,
            line_of(key),
            column_of(key),
            f"two levels of one criterion both score {score} (first on line {first})",
            "give each level of a criterion a different score",
        )
        for score, key, first in _repeated(levels, "score")
    ]


def _unknown_triggers(path: Path, question: Node, key_points: list[Node]) -> list[Problem]:
    known = sorted({i for i in (_scalar(value_node(kp, "id")) for kp in key_points) if i})
    problems = []
    for follow_up in _items(value_node(question, "follow_ups")):
        trigger = _scalar(value_node(follow_up, "trigger"))
        key = key_node(follow_up, "trigger")
        if not trigger or key is None or trigger in known:
            continue
        hint = difflib.get_close_matches(trigger, known, n=1)
        fix = (
            f"did you mean {hint[0]!r}? "
            if hint
            else "add a key point with this id to a criterion, or "
        )
        fix += f"use one of this question's key point ids: {', '.join(known) or 'none yet'}"
        problems.append(
            Problem(
                path,
                line_of(key),
                column_of(key),
                f"follow-up trigger {trigger!r} is not a key point of this question's rubric",
                fix,
            )
        )
    return problems
