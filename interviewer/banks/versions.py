"""Published versions of question banks: ``BankVersion`` rows, each a whole bank stored once and
never changed afterwards, so openings and interviews keep the version they point at whatever
happens to the draft."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError

from interviewer.banks.model import Bank
from interviewer.banks.yamltext import dump_yaml
from interviewer.errors import BankError
from interviewer.store import repo
from interviewer.store.db import session_scope
from interviewer.store.models import BankVersion, Opening
from interviewer.store.repo import content_sha256, publish_bank


class UnknownBank(BankError):
    """No draft file and no published version with this id."""


@dataclass
class VersionInfo:
    id: int
    version: int
    title: str
    sha256: str
    published_at: datetime
    locked: bool
    openings: list[tuple[int, str, str]] = field(default_factory=list)  # (id, slug, title)


@dataclass(frozen=True)
class Published:
    row: BankVersion
    created: bool
    """False when exactly this content was already published under its version."""


class PublishedVersions:
    """The published versions in the database behind ``engine``; blocking, like the drafts."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def rows(self, bank_id: str) -> list[BankVersion]:
        with session_scope(self.engine) as s:
            query = select(BankVersion).where(BankVersion.bank_id == bank_id)
            return list(s.scalars(query.order_by(BankVersion.version)))

    def row(self, bank_id: str, version: int) -> BankVersion:
        for row in self.rows(bank_id):
            if row.version == version:
                return row
        raise UnknownBank(f"bank {bank_id} has no published version {version}")

    def infos(self, bank_id: str) -> list[VersionInfo]:
        """Every version of the bank, oldest first, each with the openings that use it."""
        rows = self.rows(bank_id)
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

    def bank_ids(self) -> list[str]:
        with session_scope(self.engine) as s:
            return sorted(set(s.scalars(select(BankVersion.bank_id).distinct())))

    def clash(self, bank: Bank) -> tuple[str, str] | None:
        """Why ``bank`` cannot be published under its version number, and the fix; None if it
        can (or it is exactly a version that is already published)."""
        versions = self.rows(bank.id)
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

    def store(self, bank: Bank, file: str, user_id: int | None) -> Published:
        """Store a validated bank under its version (audited); the same content again is a
        no-op with ``created`` False."""
        # SQLite refuses (without waiting) a transaction that read before another writer
        # committed and then writes: try again on a fresh snapshot, which then sees the other
        # publication and answers for it (same content: done; other content: refused, with fix).
        for attempt in range(5):
            try:
                with session_scope(self.engine, write=True) as s:
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


def export_yaml(row: BankVersion) -> str:
    header = (
        f"# Bank {row.bank_id}, published version {row.version} "
        f"({row.published_at:%Y-%m-%d %H:%M} UTC), sha256 {row.sha256[:12]}.\n"
    )
    return dump_yaml(row.content, header)
