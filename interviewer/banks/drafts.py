"""Question banks as drafts (YAML files) and published versions (database rows), kept consistent.

Source of truth (docs/question-banks.md, "Drafts and published versions"):

* The YAML file in ``question_banks/`` is the **draft**: what a domain lead edits, in git or in
  the web editor. There is one draft per bank.
* A **published version** is a ``BankVersion`` row: the whole bank, stored once, never changed
  afterwards. Openings and interviews point at a version, so they keep theirs whatever happens to
  the draft.
* Publishing validates the draft with the same validator as ``interviewer bank validate`` and
  stores it under its ``version:``. A version number that is already published with different
  content is refused, naming the next free number; the same content again is a no-op.

No edit can be lost between the two places:

* The web editor writes the draft file (atomically: temp file + rename) and only if the file is
  still the one the page loaded, compared by sha256 of its bytes; otherwise it refuses with
  :class:`DraftConflict`, which carries the file as it is now so the page can show both.
  Saves of one bank are serialised with a lock file, so two tabs cannot both "win".
* A file edit is what the editor shows next time it loads (the file is read on every request),
  and a page that is open while the file changes learns it from the conflict check.
* A bank that exists only in the database (its file was deleted, or another checkout published
  it) is listed, and a draft can be started from any published version.
* Publishing checks the file is still the one the person reviewed (by sha256) before it stores
  anything.

Everything here is blocking (files, database, TTS via ``asyncio.run`` is left to the caller):
the web layer calls it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, get_origin

import yaml
from pydantic import BaseModel
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from interviewer.banks import check as bankcheck
from interviewer.banks.model import Bank, _inner_type, bank_files
from interviewer.banks.yamltext import BankLoader
from interviewer.errors import BankError
from interviewer.store import repo
from interviewer.store.db import session_scope
from interviewer.store.models import BankVersion, Opening
from interviewer.store.repo import content_sha256, publish_bank

BANK_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_ID_LINE = re.compile(r"^id:[ \t]*['\"]?([a-z0-9][a-z0-9_-]{0,63})['\"]?[ \t]*(?:#.*)?$", re.M)


class DraftConflict(BankError):
    """The draft file is not the one the editor loaded: someone else saved it meanwhile."""

    def __init__(self, message: str, *, current_text: str | None, current_sha: str | None) -> None:
        super().__init__(message)
        self.current_text = current_text
        self.current_sha = current_sha


class PublishRefused(BankError):
    """The draft cannot be published as it is; ``problems`` say why, each with its fix."""

    def __init__(self, message: str, problems: list[bankcheck.Problem]) -> None:
        super().__init__(message)
        self.problems = problems


class UnknownBank(BankError):
    """No draft file and no published version with this id."""


def file_sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- YAML out --------------------------------------------------------------------------------


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


# --- validation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Issue:
    """A validator problem for the editor: line in the text it checked, and the form field."""

    line: int
    column: int | None
    message: str
    fix: str
    path: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.message} (fix: {self.fix})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "fix": self.fix,
            "path": self.path,
            "text": str(self),
        }


@dataclass
class Checked:
    text: str
    issues: list[Issue]
    bank: Bank | None
    data: Any

    @property
    def ok(self) -> bool:
        return not self.issues and self.bank is not None


def check_text(
    text: str | bytes, name: str = "bank.yaml"
) -> tuple[list[bankcheck.Problem], Bank | None]:
    """``bankcheck`` on text (it checks files: the text goes to a private temp file first).
    Bytes are checked as uploaded, so a file that is not UTF-8 gets the validator's message."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).name) or "bank.yaml"
    if not safe.endswith((".yaml", ".yml")):
        safe += ".yaml"
    with tempfile.TemporaryDirectory(prefix="bankcheck-") as tmp:
        path = Path(tmp) / safe
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "replace"))
        result = bankcheck.check([path])
    problems = [
        bankcheck.Problem(Path(name), p.line, p.column, p.message, p.fix) for p in result.problems
    ]
    bank = result.banks[0].bank if result.banks and not problems else None
    return problems, bank


# --- the store -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    bank_id: str
    path: Path
    text: str
    sha: str

    @property
    def file(self) -> str:
        return self.path.name


@dataclass
class VersionInfo:
    id: int
    version: int
    title: str
    sha256: str
    published_at: datetime
    locked: bool
    openings: list[tuple[int, str, str]] = field(default_factory=list)  # (id, slug, title)


@dataclass
class BankSummary:
    bank_id: str
    title: str
    draft: Draft | None
    draft_version: int | None
    state: str
    """published | ready | bump | older | invalid | no-draft"""
    message: str
    problems: int
    versions: list[VersionInfo]

    @property
    def latest(self) -> VersionInfo | None:
        return self.versions[-1] if self.versions else None


@dataclass(frozen=True)
class Published:
    row: BankVersion
    created: bool
    """False when exactly this content was already published under its version."""


class BankStore:
    """Drafts in ``banks_dir``, published versions in the database behind ``engine``."""

    def __init__(self, banks_dir: Path, engine: Engine, lock_dir: Path) -> None:
        self.banks_dir = Path(banks_dir)
        self.engine = engine
        self.lock_dir = Path(lock_dir)

    # drafts -----------------------------------------------------------------------------

    def all_draft_files(self) -> dict[str, list[Path]]:
        """Bank id -> its files, in name order. The id is read from the ``id:`` line (so a file
        that does not validate still has a page); the file name stands in when there is none.
        More than one file for an id is a problem the bank's page shows."""
        found: dict[str, list[Path]] = {}
        if not self.banks_dir.is_dir():
            return found
        for path in bank_files(self.banks_dir):
            try:
                head = path.read_bytes()[: bankcheck.MAX_BANK_BYTES].decode("utf-8-sig", "replace")
            except OSError:
                continue
            match = _ID_LINE.search(head)
            bank_id = match.group(1) if match else path.stem.lower()
            found.setdefault(bank_id, []).append(path)
        for bank_id, paths in found.items():  # <id>.yaml first: the file the editor writes
            paths.sort(key=lambda p: (p.stem != bank_id, p.name))
        return found

    def draft_files(self) -> dict[str, Path]:
        """Bank id -> its draft file (``<id>.yaml`` when a copy shares the id)."""
        return {bank_id: paths[0] for bank_id, paths in self.all_draft_files().items()}

    def draft(self, bank_id: str) -> Draft | None:
        path = self.draft_files().get(bank_id)
        if path is None:
            return None
        data = path.read_bytes()
        return Draft(bank_id, path, data.decode("utf-8-sig", "replace"), file_sha(data))

    @contextlib.contextmanager
    def _locked(self, bank_id: str) -> Iterator[None]:
        """One writer per bank across threads and processes (web workers, CLI)."""
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        with open(self.lock_dir / f"bank-{bank_id}.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write_atomic(self, path: Path, text: str) -> str:
        data = text.encode("utf-8")
        if len(data) > bankcheck.MAX_BANK_BYTES:
            raise BankError(
                f"the bank is {len(data) / 1_000_000:.1f} MB; a bank may be at most 2 MB: "
                "split it into several banks"
            )
        try:
            return self._replace(path, data)
        except OSError as err:
            raise BankError(
                f"cannot write {path}: {err.strerror or err}; nothing was changed. Make "
                f"{path.parent} writable by the server, or edit the file in git"
            ) from err

    def _replace(self, path: Path, data: bytes) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        # A dot-name without .yaml: never mistaken for a bank while it exists.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if path.exists():
                os.chmod(tmp, path.stat().st_mode & 0o777)
            else:
                os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return file_sha(data)

    def save_draft(
        self,
        bank_id: str,
        text: str,
        base_sha: str | None,
        *,
        user_id: int | None = None,
        action: str = "bank.draft.save",
        **detail: Any,
    ) -> Draft:
        """Write the draft if the file is still ``base_sha`` (None: it must not exist yet).

        A draft may have problems (work in progress is saved too); publishing checks it. The id
        inside must stay ``bank_id``: renaming a bank would orphan its published versions.
        """
        _require_id(bank_id)
        data = parse_yaml(text)
        given = data.get("id") if isinstance(data, dict) else None
        if isinstance(given, str) and given.strip() != bank_id:
            raise BankError(
                f"the text says `id: {given}` but this is bank {bank_id}: a bank cannot be "
                f"renamed; set `id: {bank_id}` back, or create a new bank"
            )
        with self._locked(bank_id):
            current = self.draft(bank_id)
            if current is None:
                if base_sha is not None:
                    raise DraftConflict(
                        f"the draft file of bank {bank_id} was deleted since this page loaded; "
                        "your text is still here: save again to write it as a new draft",
                        current_text=None,
                        current_sha=None,
                    )
                path = self.banks_dir / f"{bank_id}.yaml"
                if path.exists():
                    raise BankError(
                        f"{path.name} already exists and holds another bank: rename that "
                        "file or choose another id"
                    )
            else:
                if base_sha != current.sha:
                    raise DraftConflict(
                        f"{current.file} changed since this page loaded (edited on disk or "
                        "saved from another page); nothing was overwritten. Your text is still "
                        "in the editor: compare it with the file as it is now, merge, and "
                        "save again",
                        current_text=current.text,
                        current_sha=current.sha,
                    )
                path = current.path
            sha = self._write_atomic(path, text)
            if user_id is not None:
                # Git names who changed a file; for a change made in the browser, this does.
                with session_scope(self.engine) as s:
                    repo.audit(
                        s, user_id, action, f"bank:{bank_id}", file=path.name, sha256=sha, **detail
                    )
        return Draft(bank_id, path, text, sha)

    def create(
        self,
        *,
        bank_id: str,
        title: str,
        domain: str,
        description: str,
        user_id: int | None = None,
    ) -> Draft:
        """A new draft file with one placeholder question, ready to edit."""
        _require_id(bank_id)
        if self.draft(bank_id) is not None:
            raise BankError(f"bank {bank_id} already exists: open it from the bank list")
        if self._versions(bank_id):
            raise BankError(
                f"bank {bank_id} has published versions but no draft file: open it from the "
                "bank list and start a draft from its latest version"
            )
        text = dump_yaml(skeleton(bank_id, title, domain, description))
        problems, _ = check_text(text, f"{bank_id}.yaml")
        if problems:
            raise BankError(problems[0].message + f" (fix: {problems[0].fix})")
        return self.save_draft(bank_id, text, None, user_id=user_id, action="bank.create")

    def draft_from_version(
        self, bank_id: str, version: int, base_sha: str | None, *, user_id: int | None = None
    ) -> Draft:
        """Start (or reset) the draft from a published version, as the next version number."""
        row = self.version_row(bank_id, version)
        latest = max(v.version for v in self._versions(bank_id))
        content = dict(row.content)
        content["version"] = latest + 1
        header = f"# Started from published version {version}.\n"
        text = dump_yaml(content, header)
        return self.save_draft(
            bank_id, text, base_sha, user_id=user_id, action="bank.draft.restore", version=version
        )

    # checking ---------------------------------------------------------------------------

    def check(self, bank_id: str | None, text: str, *, name: str | None = None) -> Checked:
        """Every problem a publish of ``text`` would meet: the validator's, then the ones that
        need the other banks and the database (renamed id, id taken, version already used)."""
        name = name or f"{bank_id or 'bank'}.yaml"
        problems, bank = check_text(text, name)
        data = parse_yaml(text)
        lines = line_paths(text)
        issues = [Issue(p.line, p.column, p.message, p.fix, _field(p, lines)) for p in problems]
        id_line = _key_line(text, "id")
        version_line = _key_line(text, "version")
        if bank is not None:
            if bank_id is not None and bank.id != bank_id:
                issues.append(
                    Issue(
                        id_line,
                        None,
                        f"the id is {bank.id!r} but this is bank {bank_id!r}",
                        f"set `id: {bank_id}` back; to make a new bank, use Create bank",
                        "id",
                    )
                )
            files = self.all_draft_files().get(bank.id, [])
            if bank_id is not None and len(files) > 1:
                copies = ", ".join(p.name for p in files[1:])
                issues.append(
                    Issue(
                        id_line,
                        None,
                        f"bank id {bank.id!r} is also used by {copies}: it is not clear which "
                        "file is the draft",
                        f"give each bank file its own id, or delete the copy; {files[0].name} "
                        "is the one edited here",
                        "id",
                    )
                )
            other = files[0] if files else None
            if bank_id is None and other is not None:
                issues.append(
                    Issue(
                        id_line,
                        None,
                        f"bank id {bank.id!r} is already used by {other.name}",
                        "open that bank to edit it, or choose another id",
                        "id",
                    )
                )
            clash = self.version_clash(bank)
            if clash:
                issues.append(Issue(version_line, None, clash[0], clash[1], "version"))
        issues.sort(key=lambda i: i.line)
        return Checked(text, issues, bank if not issues else None, data)

    def version_clash(self, bank: Bank) -> tuple[str, str] | None:
        """Why ``bank`` cannot be published under its version number, and the fix; None if it
        can (or it is exactly a version that is already published)."""
        versions = self._versions(bank.id)
        if not versions:
            return None
        digest = content_sha256(bank.model_dump(mode="json"))
        latest = max(v.version for v in versions)
        same = next((v for v in versions if v.version == bank.version), None)
        if same is not None and same.sha256 == digest:
            return None
        if same is not None:
            return (
                f"version {bank.version} is already published with different content "
                "(published versions never change)",
                f"set `version: {latest + 1}`, the next free version",
            )
        if bank.version < latest:
            return (
                f"version {bank.version} is lower than the latest published version {latest}",
                f"set `version: {latest + 1}`",
            )
        return None

    # publishing -------------------------------------------------------------------------

    def publish(self, bank_id: str, expected_sha: str, user_id: int | None = None) -> Published:
        """Publish the draft as the person saw it (``expected_sha``), or refuse with why.
        Content already published under its version is not an error: ``created`` is False."""
        with self._locked(bank_id):
            draft = self.draft(bank_id)
            if draft is None:
                raise UnknownBank(f"bank {bank_id} has no draft file to publish")
            if draft.sha != expected_sha:
                raise DraftConflict(
                    f"{draft.file} changed since you reviewed it; nothing was published. "
                    "Review the draft again, then publish",
                    current_text=draft.text,
                    current_sha=draft.sha,
                )
            checked = self.check(bank_id, draft.text, name=draft.file)
            if not checked.ok:
                problems = [
                    bankcheck.Problem(draft.path, i.line, i.column, i.message, i.fix)
                    for i in checked.issues
                ]
                count = len(problems)
                raise PublishRefused(
                    f"{draft.file} has {count} problem{'s' if count != 1 else ''}; nothing was "
                    f"published. First: {problems[0]}",
                    problems,
                )
            assert checked.bank is not None
            return self._store_version(checked.bank, draft.file, user_id)

    def _store_version(self, bank: Bank, file: str, user_id: int | None) -> Published:
        # SQLite refuses (without waiting) a transaction that read before another writer
        # committed and then writes: try again on a fresh snapshot, which then sees the other
        # publication and answers for it (same content: done; other content: refused, with fix).
        for attempt in range(5):
            try:
                with session_scope(self.engine) as s:
                    before = s.scalars(
                        select(BankVersion.id).where(
                            BankVersion.bank_id == bank.id, BankVersion.version == bank.version
                        )
                    ).first()
                    row = publish_bank(s, bank)
                    s.flush()
                    if before is None:
                        repo.audit(
                            s,
                            user_id,
                            "bank.publish",
                            f"bank:{bank.id}:v{row.version}",
                            sha256=row.sha256,
                            file=file,
                        )
                return Published(row, before is None)
            except OperationalError as err:
                if "locked" not in str(err) or attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    # reading ----------------------------------------------------------------------------

    def _versions(self, bank_id: str) -> list[BankVersion]:
        with session_scope(self.engine) as s:
            query = select(BankVersion).where(BankVersion.bank_id == bank_id)
            return list(s.scalars(query.order_by(BankVersion.version)))

    def version_row(self, bank_id: str, version: int) -> BankVersion:
        for row in self._versions(bank_id):
            if row.version == version:
                return row
        raise UnknownBank(f"bank {bank_id} has no published version {version}")

    def versions(self, bank_id: str) -> list[VersionInfo]:
        rows = self._versions(bank_id)
        infos = {
            r.id: VersionInfo(r.id, r.version, r.title, r.sha256, r.published_at, r.locked)
            for r in rows
        }
        if infos:
            with session_scope(self.engine) as s:
                query = select(Opening.id, Opening.slug, Opening.title, Opening.bank_version_id)
                query = query.where(Opening.bank_version_id.in_(list(infos)))
                for oid, slug, title, version_id in s.execute(query.order_by(Opening.slug)):
                    infos[version_id].openings.append((oid, slug, title))
        return [infos[r.id] for r in rows]

    def published_ids(self) -> list[str]:
        with session_scope(self.engine) as s:
            return sorted(set(s.scalars(select(BankVersion.bank_id).distinct())))

    def summary(self, bank_id: str) -> BankSummary:
        draft = self.draft(bank_id)
        versions = self.versions(bank_id)
        if draft is None:
            if not versions:
                raise UnknownBank(f"there is no bank {bank_id}: see the bank list")
            latest = versions[-1]
            return BankSummary(
                bank_id,
                latest.title,
                None,
                None,
                "no-draft",
                f"No draft file: only published versions. Start a draft from version "
                f"{latest.version} to edit it.",
                0,
                versions,
            )
        checked = self.check(bank_id, draft.text, name=draft.file)
        data = checked.data if isinstance(checked.data, dict) else {}
        title = str(data.get("title") or (versions[-1].title if versions else bank_id))
        raw_version = data.get("version")
        draft_version = raw_version if isinstance(raw_version, int) else None
        state, message = _state(checked, versions)
        return BankSummary(
            bank_id, title, draft, draft_version, state, message, len(checked.issues), versions
        )

    def summaries(self) -> list[BankSummary]:
        ids = sorted(set(self.draft_files()) | set(self.published_ids()))
        return [self.summary(bank_id) for bank_id in ids]

    def usable_banks(self) -> list[Bank]:
        """One bank per id for things that need a runnable bank now (``serve --seed-demo``):
        the draft when it would publish cleanly, otherwise the latest published version. A
        draft that is half-edited in the browser must not stop the server from starting."""
        out: list[Bank] = []
        for bank_id in sorted(set(self.draft_files()) | set(self.published_ids())):
            draft = self.draft(bank_id)
            if draft is not None:
                checked = self.check(bank_id, draft.text, name=draft.file)
                if checked.ok and checked.bank is not None:
                    out.append(checked.bank)
                    continue
            versions = self._versions(bank_id)
            if versions:
                out.append(Bank.model_validate(versions[-1].content))
        return out

    def content(self, bank_id: str, which: str) -> tuple[str, dict[str, Any] | None, str]:
        """(label, bank data, YAML text) of ``which``: a version number or ``draft``."""
        if which == "draft":
            draft = self.draft(bank_id)
            if draft is None:
                raise UnknownBank(f"bank {bank_id} has no draft file")
            data = parse_yaml(draft.text)
            return "draft", data if isinstance(data, dict) else None, draft.text
        if not which.isdigit():
            raise UnknownBank(f"{which!r} is not a version: use a number or 'draft'")
        row = self.version_row(bank_id, int(which))
        return f"version {row.version}", row.content, export_yaml(row)


def export_yaml(row: BankVersion) -> str:
    header = (
        f"# Bank {row.bank_id}, published version {row.version} "
        f"({row.published_at:%Y-%m-%d %H:%M} UTC), sha256 {row.sha256[:12]}.\n"
    )
    return dump_yaml(row.content, header)


def _state(checked: Checked, versions: list[VersionInfo]) -> tuple[str, str]:
    if checked.issues:
        n = len(checked.issues)
        plural = "s" if n != 1 else ""
        return "invalid", f"The draft has {n} problem{plural}: fix them before publishing."
    assert checked.bank is not None
    bank = checked.bank
    digest = content_sha256(bank.model_dump(mode="json"))
    same = next((v for v in versions if v.sha256 == digest and v.version == bank.version), None)
    latest = versions[-1] if versions else None
    if same is not None and latest is not None and same.version == latest.version:
        return "published", f"The draft is published as version {same.version}."
    if same is not None and latest is not None:
        return (
            "older",
            f"The draft is version {same.version}; version {latest.version} is newer. "
            f"Start a draft from version {latest.version} to edit the latest.",
        )
    return "ready", f"Version {bank.version} is ready to publish."


def _field(problem: bankcheck.Problem, lines: dict[int, str]) -> str | None:
    """The form field a problem is about. A missing key is reported on its parent's first line,
    i.e. on the parent's first key: the field is then the parent itself."""
    path = lines.get(problem.line)
    if path is not None and "missing required key" in problem.message:
        path = path.rsplit(".", 1)[0] if "." in path else ""
    return path


def _key_line(text: str, key: str) -> int:
    match = re.search(rf"^{key}:", text, re.M)
    return text.count("\n", 0, match.start()) + 1 if match else 1


RESERVED_IDS = frozenset({"new", "import"})
"""The editor's own pages (/banks/new, /banks/import) would hide a bank with these ids."""


def _require_id(bank_id: str) -> None:
    if not BANK_ID.match(bank_id or ""):
        raise BankError(
            f"{bank_id!r} is not a bank id: use lowercase letters, digits, '-' and '_', "
            "starting with a letter or digit, at most 64 characters"
        )
    if bank_id in RESERVED_IDS:
        raise BankError(
            f"{bank_id!r} is reserved by the web editor (its pages /banks/{bank_id}): "
            "choose another id"
        )


def skeleton(bank_id: str, title: str, domain: str, description: str) -> dict[str, Any]:
    return {
        "id": bank_id,
        "title": title.strip() or bank_id,
        "domain": domain.strip() or "general",
        "version": 1,
        "language": "en",
        "description": description.strip() or f"Who the {title.strip() or bank_id} bank is for.",
        "practice_question": "To check your microphone, please tell me briefly about your "
        "current role.",
        "questions": [
            {
                "id": "first-question",
                "prompt": "Replace this with the question the interviewer asks, word for word.",
                "time_limit_s": 180,
                "reference_answer": "Replace this with a strong answer, for the scorer.",
                "rubric": {
                    "criteria": [
                        {
                            "id": "accuracy",
                            "description": "What this criterion measures.",
                            "weight": 1,
                            "levels": [
                                {"score": 0, "descriptor": "Misses the point."},
                                {"score": 1, "descriptor": "Partly right."},
                                {"score": 2, "descriptor": "Complete and correct."},
                            ],
                        }
                    ]
                },
            }
        ],
    }


# --- diff ------------------------------------------------------------------------------------


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
