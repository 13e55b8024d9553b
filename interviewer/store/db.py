"""The database engine, sessions and migrations: one place that knows SQLite from PostgreSQL.

SQLite is the zero-set-up default, so it is tuned to behave like a server: WAL (readers never
block the interview writer), foreign keys enforced, and a busy timeout instead of instant
"database is locked" errors. PostgreSQL needs nothing beyond the psycopg 3 driver.

The schema is owned by Alembic (``store/migrations``), never by ``create_all``: a database made
by migrations is the only kind that can be upgraded later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from interviewer.config import get_settings

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 15_000
_WRITE_OPTION = "interviewer_write"

T = TypeVar("T")

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3: psycopg2 is not installed."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_db_engine(url: str | None = None) -> Engine:
    """The engine for ``url`` (default: the configured database), created once per URL."""
    url = normalize_url(url or get_settings().resolved_database_url)
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _new_engine(url)
        return engine


def dispose_engine(url: str | None = None) -> None:
    """Close the pooled connections of one cached engine (all of them when ``url`` is None)."""
    with _engines_lock:
        if url is None:
            engines = list(_engines.values())
            _engines.clear()
        else:
            engine = _engines.pop(normalize_url(url), None)
            engines = [engine] if engine is not None else []
    for engine in engines:
        engine.dispose()


def _new_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if not in_memory:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    _tune_sqlite(engine, wal=not in_memory)
    return engine


def _tune_sqlite(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling skips BEGIN before SELECTs and breaks SAVEPOINT;
        # take it over (SQLAlchemy's documented recipe) so begin_nested() works as on PostgreSQL.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if wal:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A deferred transaction that reads and then writes cannot become a writer once another
        # connection has committed since its read: SQLite fails at once ("database is locked"),
        # ignoring busy_timeout. Writers (session_scope(write=True)) take the lock at BEGIN and
        # wait their turn instead; readers stay deferred so that they never block anyone.
        write = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextmanager
def session_scope(engine: Engine | None = None, *, write: bool = False) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back if it raises.

    Objects stay readable after the block (``expire_on_commit=False``): callers hand them to
    templates and the interview core after the transaction is over. ``write=True`` for blocks
    that read and then write while other writers run (live interviews, the scoring worker):
    on SQLite they take the write lock up front and queue instead of failing (PostgreSQL is
    unaffected). Never open a write block inside another write block on the same thread.
    """
    engine = engine or create_db_engine()
    if write:
        engine = engine.execution_options(**{_WRITE_OPTION: True})
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_busy(err: BaseException) -> bool:
    """SQLite's "database is locked": a writer held the lock past the busy timeout, or a block
    opened without ``write=True`` read and then tried to write after another writer committed."""
    text = str(err)
    return isinstance(err, OperationalError) and (
        "database is locked" in text or "database is busy" in text
    )


def retry_busy(work: Callable[[], T], *, attempts: int = 4, delay_s: float = 0.05) -> T:
    """``work()`` (one whole transaction, nothing but database effects), tried again a few
    times, briefly, while SQLite answers busy; any other error, or the last one, is raised.

    ``write=True`` already makes writers queue; this covers what is left (a busy timeout
    reached under a burst), so that a burst of requests answers late rather than with 503.
    """
    for attempt in range(attempts):
        try:
            return work()
        except OperationalError as err:
            if not is_busy(err) or attempt == attempts - 1:
                raise
            time.sleep(delay_s * (attempt + 1))
    raise AssertionError("unreachable")


def alembic_config(engine: Engine) -> Config:
    """An Alembic config built in code: the migrations ship inside the package, no alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser treats % as interpolation; a URL-encoded password must survive it.
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    config.set_main_option("sqlalchemy.url", url)
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine | None = None, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (default: the newest); a no-op when already there."""
    command.upgrade(alembic_config(engine or create_db_engine()), revision)


def downgrade(engine: Engine | None = None, revision: str = "-1") -> None:
    command.downgrade(alembic_config(engine or create_db_engine()), revision)


def current_revision(engine: Engine | None = None) -> str | None:
    """The revision the database is at; None for an empty (never migrated) database."""
    with (engine or create_db_engine()).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()
