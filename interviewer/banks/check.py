"""Load question banks and report every problem in them, each pinned to a file and a line.

Domain leads write banks by hand, so the validator's job is to turn a pydantic error such as
``questions.0.rubric.criteria.1.weight: greater_than`` into ``dermatology.yaml:41: ... (fix: ...)``.
The line comes from the composed YAML node tree (``yaml.compose`` keeps the marks that
``safe_load`` throws away): :mod:`~interviewer.banks.nodes` checks the tree,
:mod:`~interviewer.banks.explain` turns pydantic's errors into problems on it.

Bank files are untrusted text: a size cap checked before reading, then the strict loader of
:mod:`~interviewer.banks.yamltext` (no aliases, no tags).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from interviewer.banks.explain import validation_problems
from interviewer.banks.model import Bank, bank_files
from interviewer.banks.nodes import (
    column_of,
    duplicate_keys,
    key_node,
    line_of,
    rule_problems,
    value_node,
)
from interviewer.banks.problem import DOCS, Problem, clip
from interviewer.banks.yamltext import BankLoader, Refused
from interviewer.errors import BankError

MAX_BANK_BYTES = 2 * 1024 * 1024
"""Real banks are tens of kilobytes; anything this big is a wrong file or pasted binary data."""


@dataclass(frozen=True)
class LoadedBank:
    path: Path
    bank: Bank


@dataclass
class CheckResult:
    banks: list[LoadedBank] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


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


def check_text(text: str | bytes, name: str = "bank.yaml") -> tuple[list[Problem], Bank | None]:
    """``check`` on text (it checks files: the text goes to a private temp file first).
    Bytes are checked as uploaded, so a file that is not UTF-8 gets the validator's message."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).name) or "bank.yaml"
    if not safe.endswith((".yaml", ".yml")):
        safe += ".yaml"
    with tempfile.TemporaryDirectory(prefix="bankcheck-") as tmp:
        path = Path(tmp) / safe
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "replace"))
        result = check([path])
    problems = [Problem(Path(name), p.line, p.column, p.message, p.fix) for p in result.problems]
    bank = result.banks[0].bank if result.banks and not problems else None
    return problems, bank


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


@dataclass
class _FileCheck:
    problems: list[Problem] = field(default_factory=list)
    bank: Bank | None = None
    bank_id: tuple[str, int] | None = None


def _check_file(path: Path) -> _FileCheck:
    out = _FileCheck()
    text = _read_text(path, out.problems)
    if text is None:
        return out
    loader: BankLoader | None = None
    try:
        loader = BankLoader(text)  # checks for unprintable characters up front
        root = loader.get_single_node()
        if root is None or (isinstance(root, ScalarNode) and root.tag.endswith(":null")):
            out.problems.append(
                Problem(path, 1, None, "file holds no bank", f"write a bank (example in {DOCS})")
            )
            return out
        if not isinstance(root, MappingNode):
            out.problems.append(_not_a_mapping(path, root))
            return out
        out.problems.extend(duplicate_keys(path, root))
        out.problems.extend(rule_problems(path, root))
        id_node = key_node(root, "id")
        value = value_node(root, "id")
        if id_node is not None and isinstance(value, ScalarNode) and value.value.strip():
            out.bank_id = (value.value.strip(), line_of(id_node))
        data = loader.construct_document(root)
    except Refused as err:
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
        out.problems.extend(validation_problems(path, root, data, err))
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
        what = f"a single value ({clip(root.value)!r})"
        fix = f"write `id:`, `title:`, `questions:` and the other keys (example in {DOCS})"
    return Problem(path, line_of(root), column_of(root), f"the file holds {what}, not a bank", fix)


def _mark_problem(path: Path, err: yaml.MarkedYAMLError, message: str, fix: str) -> Problem:
    mark = err.problem_mark or err.context_mark
    if mark is None:
        return Problem(path, 1, None, message, fix)
    return Problem(path, mark.line + 1, mark.column + 1, message, fix)
