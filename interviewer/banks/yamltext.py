"""Bank YAML text in and out: the strict loader, the dumper the editor writes drafts with, and
the map from lines to form fields.

Bank files are untrusted text: the safe loader only, and no aliases or tags at all. A ten-line
"billion laughs" file expands to gigabytes through aliases, and a bank has no use for anchors or
``!!python/...`` tags. The validator, the editor's parser and its line map all read with
:class:`BankLoader`, so they agree on what a bank file holds.
"""

from __future__ import annotations

from typing import Any, get_origin

import yaml
from pydantic import BaseModel
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from interviewer.banks.model import Bank, _inner_type


class Refused(yaml.MarkedYAMLError):
    """YAML that is valid but not allowed in a bank; ``fix`` says what to write instead."""

    def __init__(self, problem: str, mark: yaml.Mark, fix: str) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.fix = fix


MAX_NODES = 100_000
"""Values (scalars, lists, mappings) in one bank file. The shipped banks hold about 40 per KB,
so a bank at the 2 MB limit has some 80,000; a 2 MB flow list ``[1,1,1,…]`` has a million, and
PyYAML (pure Python) takes tens of seconds to read them. Counted while composing, so such a
file is refused after the first MAX_NODES, in about a second."""


class BankLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and explicit tags while composing, before anything
    is expanded or constructed, and stops at MAX_NODES values."""

    nodes = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise Refused(
                f"the file holds more than {MAX_NODES:,} values: too many for a bank",
                event.start_mark,
                "split it into several banks, or remove the repeated values",
            )
        if isinstance(event, yaml.AliasEvent):
            raise Refused(
                f"YAML alias *{event.anchor} is not allowed in a bank",
                event.start_mark,
                "write the value out in full instead of using &anchor / *alias",
            )
        tag = getattr(event, "tag", None)
        if tag not in (None, "!"):
            raise Refused(
                f"YAML tag {tag} is not allowed in a bank",
                event.start_mark,
                "remove the tag; put the value in quotes if it must be read as text",
            )
        return super().compose_node(parent, index)


def _as_text(loader: yaml.SafeLoader, node: ScalarNode) -> str:
    return loader.construct_scalar(node)


def _number(kind: str) -> Any:
    construct = getattr(yaml.SafeLoader, f"construct_yaml_{kind}")

    def guarded(loader: yaml.SafeLoader, node: ScalarNode) -> Any:
        # PyYAML's resolver accepts "0b_" or "._" as numbers that int()/float() then refuse.
        try:
            return construct(loader, node)
        except (ValueError, OverflowError) as err:
            raise Refused(
                f"{node.value!r} looks like a number but is not one ({err})",
                node.start_mark,
                "write a plain number, or put the value in quotes if it is text",
            ) from err

    return guarded


# Banks have no dates: a prompt or title that happens to look like one stays text.
BankLoader.add_constructor("tag:yaml.org,2002:timestamp", _as_text)
BankLoader.add_constructor("tag:yaml.org,2002:int", _number("int"))
BankLoader.add_constructor("tag:yaml.org,2002:float", _number("float"))


class _Dumper(yaml.SafeDumper):
    """Block style, model key order, multi-line text as ``|`` blocks: reads like the hand-written
    banks, with lists indented under their key as in the shipped files."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> Any:
    # Long prose folds (``>-``) like the hand-written banks, instead of wrapping as plain or
    # quoted scalars full of escaped quotes.
    style = "|" if "\n" in value else (">" if len(value) > 70 else None)
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


_EMPTY_OMITTED = {"follow_ups", "key_points", "red_flags"}


def _prune(value: Any) -> Any:
    """Drop empty optional lists, so a form save does not add ``follow_ups: []`` everywhere."""
    if isinstance(value, dict):
        return {
            k: _prune(v) for k, v in value.items() if not (k in _EMPTY_OMITTED and v in ([], None))
        }
    if isinstance(value, list):
        return [_prune(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # a stored `weight: 2.0` reads as the `weight: 2` that was written
    return value


def _ordered(value: Any, model: type[BaseModel] | None = Bank) -> Any:
    """Keys in the schema's order (id, title, ... questions), whatever order the browser sent
    them in; unknown keys (typos the validator will name) go last, kept."""
    if isinstance(value, list):
        return [_ordered(v, model) for v in value]
    if not isinstance(value, dict) or model is None:
        return value
    fields = model.model_fields
    keys = [k for k in fields if k in value] + [k for k in value if k not in fields]
    out = {}
    for key in keys:
        inner = _inner_type(fields[key]) if key in fields else None
        sub = inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None
        out[key] = _ordered(value[key], sub)
    return out


def form_shape_ok(value: Any, model: type[BaseModel] = Bank) -> bool:
    """Whether the form can show ``value`` without dropping anything: every list and mapping
    where the schema has one (a scalar where a list belongs would be replaced by an empty list
    as soon as the form touched it). Scalars may be wrong; the validator says so."""
    if not isinstance(value, dict):
        return False
    for key, info in model.model_fields.items():
        if key not in value or value[key] is None:
            continue
        inner = _inner_type(info)
        nested = isinstance(inner, type) and issubclass(inner, BaseModel)
        item = value[key]
        if get_origin(info.annotation) is list:
            if not isinstance(item, list):
                return False
            if nested and not all(form_shape_ok(x, inner) for x in item):
                return False
        elif nested:
            if not form_shape_ok(item, inner):
                return False
        elif isinstance(item, dict | list):
            return False
    return True


def dump_yaml(data: Any, header: str = "") -> str:
    """YAML text for bank data (valid or not: the validator then points at the wrong line)."""
    body = yaml.dump(
        _prune(_ordered(data)),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        indent=2,
    )
    return header + body


def leading_comments(text: str) -> str:
    """The comment block at the top of a file, which a form save keeps (other comments go)."""
    lines = []
    for line in text.splitlines(keepends=True):
        if line.startswith("#") or (lines and not line.strip()):
            lines.append(line)
        else:
            break
    while lines and not lines[-1].strip():
        lines.pop()
    return "".join(lines)


def parse_yaml(text: str) -> Any:
    """The data in bank YAML with the validator's rules (no aliases or tags), or None."""
    try:
        loader = BankLoader(text)  # checks for unprintable characters up front
    except yaml.YAMLError:
        return None
    try:
        return loader.get_single_data()
    except (yaml.YAMLError, RecursionError, ValueError):
        return None
    finally:
        loader.dispose()


def line_paths(text: str) -> dict[int, str]:
    """Line number -> dotted path of the field written there (``questions.0.rubric.weight``):
    lets the form show a validator message next to the field it is about."""
    try:
        root = yaml.compose(text, Loader=BankLoader)
    except (yaml.YAMLError, RecursionError, ValueError):
        return {}
    out: dict[int, str] = {}
    stack: list[tuple[Node, str]] = [(root, "")] if root is not None else []
    while stack:
        node, path = stack.pop()
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if not isinstance(key, ScalarNode):
                    continue
                sub = f"{path}.{key.value}" if path else str(key.value)
                out[key.start_mark.line + 1] = sub
                stack.append((value, sub))
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                sub = f"{path}.{i}"
                out.setdefault(item.start_mark.line + 1, sub)
                stack.append((item, sub))
    return out
