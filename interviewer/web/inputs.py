"""What routes take from a client, bounded at the edge: ids, numbers typed into forms, and the
nesting of JSON bodies, so that malformed input is a 400/404/422 and never a 503.

SQLite stores integers up to 2^63-1 (a bigger id raised OverflowError deep in a query), Python
calls "²" a digit that ``int`` refuses, and a deeply nested JSON body exhausts the recursion
limit of the parser and of everything that walks the result.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import Path, Request

MAX_ID = 2**63 - 1
"""The largest id a database row can have (a signed 64-bit integer)."""

Id = Annotated[int, Path(ge=1, le=MAX_ID)]
"""A row id in a route's path: anything else is answered 422 before the route runs."""

MAX_JSON_DEPTH = 64
"""Deeper than any bank the editor sends (a bank is about six levels deep)."""

_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class BadInput(ValueError):
    """Input refused at the edge; its message says what to send instead."""


def number(value: Any, *, maximum: int = MAX_ID) -> int | None:
    """A whole number typed into a form or a query (ASCII digits, at most ``maximum``), else
    None."""
    text = str(value or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    found = int(text)
    return found if found <= maximum else None


def json_depth(text: str) -> int:
    """How deeply ``text``'s arrays and objects nest (strings skipped), counted without
    parsing; stops counting once past :data:`MAX_JSON_DEPTH`."""
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                break
        elif token in "]}":
            depth -= 1
    return deepest


async def json_body(request: Request) -> Any:
    """The request's JSON, refused (``BadInput``) when it is not JSON or nests too deeply."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput("send the body as UTF-8 JSON") from None
    if json_depth(text) > MAX_JSON_DEPTH:
        raise BadInput(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text)
    except ValueError:
        raise BadInput("send a JSON body") from None
