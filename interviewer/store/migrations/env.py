"""Alembic's entry point, run by ``interviewer.store.db.migrate`` and ``interviewer db ...``.

The engine comes from ``config.attributes["engine"]`` (set by ``db.alembic_config``) or, for a
bare ``alembic`` command, from the ``sqlalchemy.url`` option. Migrations are rendered in batch
mode so the same file can alter tables on SQLite (which copies the table) and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

import interviewer.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from interviewer.store.db import create_db_engine

target_metadata = SQLModel.metadata


def _render_item(kind: str, obj: Any, _autogen_context: Any) -> str | bool:
    """Autogenerate plain SQLAlchemy types: a migration must not depend on SQLModel internals."""
    if kind == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    context.configure(
        connection=connection,
        url=url,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        render_item=_render_item,
        literal_binds=connection is None,
        # SQLite can roll DDL back too (db.py issues real BEGINs): a failed upgrade leaves the
        # database at the previous revision instead of half-migrated.
        transactional_ddl=True,
    )


def run_offline() -> None:
    """``--sql``: print the DDL instead of running it (for a DBA to review)."""
    _configure(url=context.config.get_main_option("sqlalchemy.url"))
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = context.config.attributes.get("engine") or create_db_engine(
        context.config.get_main_option("sqlalchemy.url")
    )
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        if sqlite:
            # A batch migration drops and re-creates tables that others reference; with
            # foreign keys on, that fails or cascades. The pragma only works outside a
            # transaction, so set it on the raw connection (autocommit, see db.py) first.
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                connection.commit()
                if broken:
                    raise RuntimeError(f"migration left dangling foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                raw.execute("PRAGMA foreign_keys=ON")


if context.is_offline_mode():
    run_offline()
else:
    run_online()
