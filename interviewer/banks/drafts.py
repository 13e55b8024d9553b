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
the web layer calls it through ``asyncio.to_thread``. The database side is
:mod:`~interviewer.banks.versions`; how a draft reads to the editor is
:mod:`~interviewer.banks.issues`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from interviewer.banks.check import MAX_BANK_BYTES, Problem, check_text
from interviewer.banks.issues import Checked, Issue, key_line, text_issues
from interviewer.banks.model import Bank, bank_files
from interviewer.banks.versions import (
    Published,
    PublishedVersions,
    UnknownBank,
    VersionInfo,
    export_yaml,
)
from interviewer.banks.yamltext import dump_yaml, parse_yaml
from interviewer.errors import BankError
from interviewer.store import repo
from interviewer.store.db import session_scope
from interviewer.store.models import BankVersion
from interviewer.store.repo import content_sha256

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

    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message)
        self.problems = problems


def file_sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- validation ------------------------------------------------------------------------------


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


class BankStore:
    """Drafts in ``banks_dir``, published versions in the database behind ``engine``."""

    def __init__(self, banks_dir: Path, engine: Engine, lock_dir: Path) -> None:
        self.banks_dir = Path(banks_dir)
        self.engine = engine
        self.published = PublishedVersions(engine)
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
                head = path.read_bytes()[:MAX_BANK_BYTES].decode("utf-8-sig", "replace")
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
        if len(data) > MAX_BANK_BYTES:
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
                with session_scope(self.engine, write=True) as s:
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
        if self.published.rows(bank_id):
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
        latest = max(v.version for v in self.published.rows(bank_id))
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
        issues, bank, data = text_issues(text, name)
        id_line = key_line(text, "id")
        version_line = key_line(text, "version")
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
            clash = self.published.clash(bank)
            if clash:
                issues.append(Issue(version_line, None, clash[0], clash[1], "version"))
        issues.sort(key=lambda i: i.line)
        return Checked(text, issues, bank if not issues else None, data)

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
                    Problem(draft.path, i.line, i.column, i.message, i.fix) for i in checked.issues
                ]
                count = len(problems)
                raise PublishRefused(
                    f"{draft.file} has {count} problem{'s' if count != 1 else ''}; nothing was "
                    f"published. First: {problems[0]}",
                    problems,
                )
            assert checked.bank is not None
            return self.published.store(checked.bank, draft.file, user_id)

    # reading ----------------------------------------------------------------------------

    def version_row(self, bank_id: str, version: int) -> BankVersion:
        return self.published.row(bank_id, version)

    def versions(self, bank_id: str) -> list[VersionInfo]:
        return self.published.infos(bank_id)

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
        ids = sorted(set(self.draft_files()) | set(self.published.bank_ids()))
        return [self.summary(bank_id) for bank_id in ids]

    def usable_banks(self) -> list[Bank]:
        """One bank per id for things that need a runnable bank now (``serve --seed-demo``):
        the draft when it would publish cleanly, otherwise the latest published version. A
        draft that is half-edited in the browser must not stop the server from starting."""
        out: list[Bank] = []
        for bank_id in sorted(set(self.draft_files()) | set(self.published.bank_ids())):
            draft = self.draft(bank_id)
            if draft is not None:
                checked = self.check(bank_id, draft.text, name=draft.file)
                if checked.ok and checked.bank is not None:
                    out.append(checked.bank)
                    continue
            versions = self.published.rows(bank_id)
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
