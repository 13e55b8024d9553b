"""Load question banks and report every problem in them, each pinned to a file and a line.

Domain leads write banks by hand, so the validator's job is to turn a pydantic error such as
``questions.0.rubric.criteria.1.weight: greater_than`` into ``dermatology.yaml:41: ... (fix: ...)``.
The line comes from the composed YAML node tree (``yaml.compose`` keeps the marks that
``safe_load`` throws away); the same tree reveals duplicate keys, which PyYAML otherwise resolves
silently to the last one, dropping half a rubric without a word.

Bank files are untrusted text: the safe loader only, a size cap checked before reading, and no
aliases or tags at all. A ten-line "billion laughs" file expands to gigabytes through aliases, and
a bank has no use for anchors or ``!!python/...`` tags.

Some rules (unique ids, follow-up triggers) are checked here on the node tree as well as in
``banks.py``'s model validators: pydantic stops at the first duplicate and points at the whole
rubric, while a domain lead wants every duplicate with the line of its ``id:``. The pydantic
messages for those rules are then dropped, so each problem is reported once.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from interviewer.banks.model import (
    Bank,
    Criterion,
    FollowUp,
    KeyPoint,
    Level,
    Question,
    RedFlag,
    Rubric,
    bank_files,
)
from interviewer.errors import BankError

MAX_BANK_BYTES = 2 * 1024 * 1024
"""Real banks are tens of kilobytes; anything this big is a wrong file or pasted binary data."""

DOCS = "docs/question-banks.md"


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a bank. ``line`` is 1-based; 0 means the path as a whole."""

    file: Path
    line: int
    column: int | None
    message: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return _one_line(f"{where}: {self.message} (fix: {self.fix})")


@dataclass(frozen=True)
class LoadedBank:
    path: Path
    bank: Bank


@dataclass
class CheckResult:
    banks: list[LoadedBank] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def load_bank(path: Path) -> Bank:
    """The bank in one file, or ``BankError`` naming its first problem."""
    path = Path(path)
    if path.is_dir():
        raise BankError(f"{path}: is a folder, not a bank file; pass one .yaml file")
    result = check([path])
    _raise_first(result, path)
    return result.banks[0].bank


def load_banks(folder: Path) -> list[Bank]:
    """Every bank in a folder (bank ids unique across files), or ``BankError`` for the first
    problem. An empty folder is an error: an interview with no banks cannot start."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise BankError(f"{folder}: is a file, not a folder of banks; pass its folder")
    result = check([folder])
    _raise_first(result, folder)
    return [loaded.bank for loaded in result.banks]


def check_paths(paths: Sequence[Path]) -> list[Problem]:
    """Every problem in the given bank files and folders, in file order then line order."""
    return check(paths).problems


def check(paths: Sequence[Path]) -> CheckResult:
    """Like ``check_paths`` but also returns the banks that loaded cleanly, for the CLI."""
    result = CheckResult()
    seen_files: set[Path] = set()
    first_use: dict[str, tuple[Path, int]] = {}
    for path in (Path(p) for p in paths):
        files, path_problem = _expand(path)
        if path_problem is not None:
            result.problems.append(path_problem)
        for file in files:
            if file.resolve() in seen_files:
                continue
            seen_files.add(file.resolve())
            result.files.append(file)
            checked = _check_file(file)
            problems = checked.problems
            if checked.bank_id is not None:
                bank_id, line = checked.bank_id
                if bank_id in first_use:
                    other, other_line = first_use[bank_id]
                    problems.append(
                        Problem(
                            file,
                            line,
                            None,
                            f"bank id {bank_id!r} is already used by {other}:{other_line}",
                            "give each bank file its own id; interviews refer to banks by id",
                        )
                    )
                else:
                    first_use[bank_id] = (file, line)
            problems.sort(key=lambda p: (p.line, p.column or 0))
            result.problems.extend(problems)
            if checked.bank is not None and not problems:
                result.banks.append(LoadedBank(file, checked.bank))
    return result


def _expand(path: Path) -> tuple[list[Path], Problem | None]:
    """The bank files a path stands for, or the problem with the path itself."""
    if not path.exists():
        return [], Problem(
            path,
            0,
            None,
            "no such file or folder",
            "check the path; banks live in question_banks/ unless INTERVIEWER_BANKS_DIR "
            "says otherwise",
        )
    if not path.is_dir():
        return [path], None
    try:
        files = bank_files(path)
    except OSError as err:
        return [], _os_problem(path, err)
    if not files:
        return [], Problem(
            path,
            0,
            None,
            "no bank files (*.yaml, *.yml) in this folder",
            f"add a bank file (example in {DOCS}) or pass the folder that holds them",
        )
    return files, None


def _raise_first(result: CheckResult, path: Path) -> None:
    if not result.problems:
        return
    more = len(result.problems) - 1
    also = f"; {more} more problem{'s' if more != 1 else ''}" if more else ""
    raise BankError(f"{result.problems[0]}{also}; run `interviewer bank validate {path}`")


# --- one file -------------------------------------------------------------------------------


@dataclass
class _FileCheck:
    problems: list[Problem] = field(default_factory=list)
    bank: Bank | None = None
    bank_id: tuple[str, int] | None = None


class _Refused(yaml.MarkedYAMLError):
    """YAML that is valid but not allowed in a bank; ``fix`` says what to write instead."""

    def __init__(self, problem: str, mark: yaml.Mark, fix: str) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.fix = fix


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and explicit tags while composing, before anything
    is expanded or constructed."""

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(
                f"YAML alias *{event.anchor} is not allowed in a bank",
                event.start_mark,
                "write the value out in full instead of using &anchor / *alias",
            )
        tag = getattr(event, "tag", None)
        if tag not in (None, "!"):
            raise _Refused(
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
            raise _Refused(
                f"{node.value!r} looks like a number but is not one ({err})",
                node.start_mark,
                "write a plain number, or put the value in quotes if it is text",
            ) from err

    return guarded


# Banks have no dates: a prompt or title that happens to look like one stays text.
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _as_text)
_Loader.add_constructor("tag:yaml.org,2002:int", _number("int"))
_Loader.add_constructor("tag:yaml.org,2002:float", _number("float"))


def _check_file(path: Path) -> _FileCheck:
    out = _FileCheck()
    text = _read_text(path, out.problems)
    if text is None:
        return out
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # checks for unprintable characters up front
        root = loader.get_single_node()
        if root is None or (isinstance(root, ScalarNode) and root.tag.endswith(":null")):
            out.problems.append(
                Problem(path, 1, None, "file holds no bank", f"write a bank (example in {DOCS})")
            )
            return out
        if not isinstance(root, MappingNode):
            out.problems.append(_not_a_mapping(path, root))
            return out
        out.problems.extend(_duplicate_keys(path, root))
        out.problems.extend(_rule_problems(path, root))
        id_node = _key_node(root, "id")
        value = _value(root, "id")
        if id_node is not None and isinstance(value, ScalarNode) and value.value.strip():
            out.bank_id = (value.value.strip(), _line(id_node))
        data = loader.construct_document(root)
    except _Refused as err:
        out.problems.append(_mark_problem(path, err, err.problem or "", err.fix))
        return out
    except yaml.MarkedYAMLError as err:
        message = "; ".join(s for s in (err.context, err.problem) if s)
        out.problems.append(
            _mark_problem(
                path,
                err,
                f"invalid YAML: {message}",
                "check the indentation and quoting on this line and the one above; quote text "
                "that contains ': ', ' #' or starts with a special character",
            )
        )
        return out
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, max(err.position, 0)) + 1
        out.problems.append(
            Problem(
                path,
                line,
                None,
                f"character {chr(err.character)!r} (U+{err.character:04X}) is not allowed in YAML",
                "delete the control character (often pasted from a PDF or word processor)",
            )
        )
        return out
    except yaml.YAMLError as err:
        out.problems.append(Problem(path, 1, None, f"invalid YAML: {err}", "fix the YAML syntax"))
        return out
    except RecursionError:
        out.problems.append(
            Problem(path, 1, None, "YAML is nested too deeply", "flatten the nesting")
        )
        return out
    finally:
        if loader is not None:
            loader.dispose()

    try:
        out.bank = Bank.model_validate(data)
    except ValidationError as err:
        out.problems.extend(_validation_problems(path, root, data, err))
    return out


def _read_text(path: Path, problems: list[Problem]) -> str | None:
    try:
        size = path.stat().st_size
        if size > MAX_BANK_BYTES:
            problems.append(_too_big(path, size))
            return None
        with path.open("rb") as f:
            data = f.read(MAX_BANK_BYTES + 1)
    except OSError as err:
        problems.append(_os_problem(path, err))
        return None
    if len(data) > MAX_BANK_BYTES:  # a pipe, or a file that grew after stat()
        problems.append(_too_big(path, len(data)))
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        problems.append(
            Problem(
                path,
                line,
                column,
                f"not UTF-8 text (byte 0x{data[err.start]:02x} at column {column})",
                "save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 OLD > NEW`",
            )
        )
        return None


def _too_big(path: Path, size: int) -> Problem:
    return Problem(
        path,
        1,
        None,
        f"file is {size / 1_000_000:.1f} MB; a bank may be at most "
        f"{MAX_BANK_BYTES // (1024 * 1024)} MB",
        "check this is the right file; split a huge bank into several banks",
    )


def _os_problem(path: Path, err: OSError) -> Problem:
    return Problem(
        path, 0, None, f"cannot read: {err.strerror or err}", "check the path and its permissions"
    )


def _not_a_mapping(path: Path, root: Node) -> Problem:
    if isinstance(root, SequenceNode):
        what = "a list"
        fix = "remove the leading '- ' so the top level is `key: value` lines"
    else:
        what = f"a single value ({_clip(root.value)!r})"
        fix = f"write `id:`, `title:`, `questions:` and the other keys (example in {DOCS})"
    return Problem(path, _line(root), _column(root), f"the file holds {what}, not a bank", fix)


def _mark_problem(path: Path, err: yaml.MarkedYAMLError, message: str, fix: str) -> Problem:
    mark = err.problem_mark or err.context_mark
    if mark is None:
        return Problem(path, 1, None, message, fix)
    return Problem(path, mark.line + 1, mark.column + 1, message, fix)


# --- node tree helpers ----------------------------------------------------------------------


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _column(node: Node) -> int:
    return node.start_mark.column + 1


def _key_node(node: Node | None, key: str) -> Node | None:
    """The last key node called ``key`` (the one PyYAML keeps when a key is duplicated)."""
    if isinstance(node, MappingNode):
        for k, _ in reversed(node.value):
            if isinstance(k, ScalarNode) and k.value == key:
                return k
    return None


def _value(node: Node | None, key: str) -> Node | None:
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


def _duplicate_keys(path: Path, root: Node) -> list[Problem]:
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
                        _line(k),
                        _column(k),
                        f"duplicate key {_clip(k.value)!r} (first on line {_line(first)}); "
                        "YAML would silently keep only this one",
                        "delete one of the two, or merge them",
                    )
                )
    return problems


# --- rules checked on the node tree, for precise lines --------------------------------------

_RULE_MESSAGES = re.compile(
    r"^Value error, (duplicate (question|criterion|key point|red flag) id "
    r"|question .*: follow-up trigger "
    r"|criterion .*: level scores must be distinct)"
)


def _rule_problems(path: Path, root: Node) -> list[Problem]:
    problems: list[Problem] = []
    questions = _items(_value(root, "questions"))
    problems += _duplicate_ids(path, "question", "the bank", questions)
    for question in questions:
        rubric = _value(question, "rubric")
        criteria = _items(_value(rubric, "criteria"))
        key_points = [kp for c in criteria for kp in _items(_value(c, "key_points"))]
        problems += _duplicate_ids(path, "criterion", "a rubric", criteria)
        problems += _duplicate_ids(path, "key point", "a question's rubric", key_points)
        red_flags = _items(_value(rubric, "red_flags"))
        problems += _duplicate_ids(path, "red flag", "a rubric", red_flags)
        for criterion in criteria:
            problems += _duplicate_scores(path, _items(_value(criterion, "levels")))
        if isinstance(rubric, MappingNode):
            problems += _unknown_triggers(path, question, key_points)
    return problems


def _scalar(node: Node | None) -> str | None:
    return node.value.strip() if isinstance(node, ScalarNode) else None


def _duplicate_ids(path: Path, kind: str, scope: str, items: list[Node]) -> list[Problem]:
    problems = []
    first: dict[str, int] = {}
    for item in items:
        ident = _scalar(_value(item, "id"))
        key = _key_node(item, "id")
        if not ident or key is None:
            continue
        if ident in first:
            problems.append(
                Problem(
                    path,
                    _line(key),
                    _column(key),
                    f"duplicate {kind} id {ident!r} (first on line {first[ident]})",
                    f"rename one of them: {kind} ids must be unique within {scope}",
                )
            )
        else:
            first[ident] = _line(key)
    return problems


def _duplicate_scores(path: Path, levels: list[Node]) -> list[Problem]:
    problems = []
    first: dict[str, int] = {}
    for level in levels:
        score = _scalar(_value(level, "score"))
        key = _key_node(level, "score")
        if not score or key is None:
            continue
        if score in first:
            problems.append(
                Problem(
                    path,
                    _line(key),
                    _column(key),
                    f"two levels of one criterion both score {score} (first on line "
                    f"{first[score]})",
                    "give each level of a criterion a different score",
                )
            )
        else:
            first[score] = _line(key)
    return problems


def _unknown_triggers(path: Path, question: Node, key_points: list[Node]) -> list[Problem]:
    known = sorted({i for i in (_scalar(_value(kp, "id")) for kp in key_points) if i})
    problems = []
    for follow_up in _items(_value(question, "follow_ups")):
        trigger = _scalar(_value(follow_up, "trigger"))
        key = _key_node(follow_up, "trigger")
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
                _line(key),
                _column(key),
                f"follow-up trigger {trigger!r} is not a key point of this question's rubric",
                fix,
            )
        )
    return problems


# --- pydantic errors ------------------------------------------------------------------------


def _validation_problems(path: Path, root: Node, data: Any, err: ValidationError) -> list[Problem]:
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
        if error["type"] == "value_error" and _RULE_MESSAGES.match(error["msg"]):
            continue  # already reported, with a better line, by _rule_problems
        if error["type"] == "missing" and (tuple(error["loc"][:-1]), error["loc"][-1]) in misspelt:
            continue
        loc = tuple(error["loc"])
        node, _ = _locate(root, loc)
        _, parent = _locate(root, loc[:-1])
        in_flow = isinstance(parent, MappingNode) and bool(parent.flow_style)
        message, fix = _explain(error, data, in_flow)
        problems.append(Problem(path, _line(node), _column(node), message, fix))
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


def _inner_type(info: FieldInfo) -> Any:
    annotation = info.annotation
    if get_origin(annotation) is list:
        return get_args(annotation)[0]
    return annotation


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
        return f"{parent}: unknown key {_clip(key)!r}", fix
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if isinstance(value, str | int | float | bool) and kind != "value_error":
        message += f" (got {_clip(repr(value))})"
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


def _clip(text: str, limit: int = 60) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


# --- schema reference for docs/question-banks.md --------------------------------------------

SCHEMA_MODELS: tuple[type[BaseModel], ...] = (
    Bank,
    Question,
    FollowUp,
    Rubric,
    Criterion,
    Level,
    KeyPoint,
    RedFlag,
)

# Meanings for fields whose pydantic Field has no description yet (banks.py is the better home).
_MEANINGS = {
    "Bank.id": "Stable id of the bank, unique across all bank files.",
    "Bank.title": "Human-readable name, shown by `interviewer bank list`.",
    "Bank.domain": "Field of expertise, e.g. medicine or law.",
    "Bank.version": "Bump it whenever questions or rubrics change.",
    "Bank.language": "Language of the questions: a code such as `en` or `en-GB`.",
    "Bank.description": "Who the bank is for.",
    "Bank.questions": "The scored questions.",
    "Question.id": "Stable id of the question, unique within the bank.",
    "Question.time_limit_s": "Seconds the applicant has to answer.",
    "Question.reference_answer": "A strong answer, for the scorer to compare against.",
    "Question.follow_ups": "Probes, each tied to a key point of this question's rubric.",
    "Question.rubric": "How the answer is scored.",
    "FollowUp.prompt": "What the agent asks, word for word.",
    "Rubric.criteria": "What the answer is scored on, each with a weight and levels.",
    "Rubric.red_flags": "Claims that cost points when an answer makes them.",
    "Criterion.id": "Id of the criterion, unique within the rubric.",
    "Criterion.description": "What the criterion measures.",
    "Criterion.levels": "The score ladder; scores must be distinct.",
    "Criterion.key_points": "Concrete points that show the criterion is met.",
    "KeyPoint.id": "Id of the key point, unique across all criteria of the question.",
    "RedFlag.id": "Id of the red flag, unique within the rubric.",
}


def schema_reference() -> str:
    """Markdown tables of every bank field, built from the pydantic models so the docs cannot
    drift from the schema (tests compare this with docs/question-banks.md)."""
    out = []
    for model in SCHEMA_MODELS:
        out.append(f"### {model.__name__}\n")
        out.append("| Field | Type | Default | Meaning |")
        out.append("|---|---|---|---|")
        for name, info in model.model_fields.items():
            meaning = info.description or _MEANINGS.get(f"{model.__name__}.{name}", "")
            out.append(f"| `{name}` | {_type_text(info)} | {_default_text(info)} | {meaning} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _type_text(info: FieldInfo) -> str:
    inner = _inner_type(info)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        base = f"[{inner.__name__}](#{inner.__name__.lower()})"
    elif inner is str:
        base = "text"
    elif inner is int:
        base = "whole number"
    elif inner is float:
        base = "number"
    else:
        base = getattr(inner, "__name__", str(inner))
    rules = []
    for meta in info.metadata:
        pattern = getattr(meta, "pattern", None)
        if pattern == r"^[a-z0-9][a-z0-9_-]*$":
            base = "id"
            rules.append("lowercase letters, digits, `-`, `_`")
        elif pattern:
            rules.append(f"pattern `{pattern}`")
        if getattr(meta, "min_length", None) and inner is str and pattern is None:
            rules.append("not empty")
        for attr, symbol in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            if getattr(meta, attr, None) is not None:
                rules.append(f"{symbol} {getattr(meta, attr)}")
        if getattr(meta, "max_length", None):
            rules.append(f"at most {meta.max_length} characters")
        if get_origin(info.annotation) is list and getattr(meta, "min_length", None):
            rules.append(f"at least {meta.min_length}")
    text = f"list of {base}" if get_origin(info.annotation) is list else base
    return f"{text} ({', '.join(rules)})" if rules else text


def _default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is list:
        return "`[]`"
    return f"`{info.default}`"
