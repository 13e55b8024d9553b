"""Bank YAML text in and out.

Bank files are untrusted text: the safe loader only, and no aliases or tags at all. A ten-line
"billion laughs" file expands to gigabytes through aliases, and a bank has no use for anchors or
``!!python/...`` tags. The validator, the editor's parser and its line map all read with
:class:`BankLoader`, so they agree on what a bank file holds.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import Node, ScalarNode


class Refused(yaml.MarkedYAMLError):
    """YAML that is valid but not allowed in a bank; ``fix`` says what to write instead."""

    def __init__(self, problem: str, mark: yaml.Mark, fix: str) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.fix = fix


class BankLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and explicit tags while composing, before anything
    is expanded or constructed."""

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
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
