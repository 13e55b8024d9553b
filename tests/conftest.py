"""Shared fixtures. Several people add to this file: append your section, keep the others."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# --- No network beyond this machine ----------------------------------------------------------
#
# Every model is loaded from the model directory; nothing may reach a model hub (or anything
# else) from a test. HF_HUB_OFFLINE=1 is set by the package for every process; in the pytest
# process itself, a connection to anything but a loopback address fails at once, so a code path
# that tries the network fails its test instead of passing here and hanging offline.
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _loopback_only(sock: socket.socket, address: object) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host = str(address[0])
        try:
            ips = {info[4][0] for info in socket.getaddrinfo(host, None)}
        except socket.gaierror as err:
            raise OSError(f"tests run offline: cannot resolve {host!r}") from err
        if not all(ip.startswith("127.") or ip == "::1" for ip in ips):
            raise OSError(f"tests run offline: refused a connection to {address!r}")


def _guarded_connect(sock: socket.socket, address: object) -> None:
    _loopback_only(sock, address)
    _real_connect(sock, address)


def _guarded_connect_ex(sock: socket.socket, address: object) -> int:
    _loopback_only(sock, address)
    return _real_connect_ex(sock, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


# --- The live gate: one per test process -------------------------------------------------------
#
# Live interviews pause scoring and integrity analysis on the same machine through a directory of
# leases (interviewer/priority.py). Under pytest-xdist each worker is its own little deployment:
# a scorer in one worker must not wait for an interview another worker's test is running.
os.environ.setdefault(
    "INTERVIEWER_LIVE_GATE_DIR",
    os.path.join(
        tempfile.gettempdir(),
        f"interviewer-live-test-{os.getuid()}-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}",
    ),
)


# --- Data layer: every data-layer test runs on SQLite and on a real PostgreSQL server ----------
#
#   def test_something(db_url): ...      # a fresh, empty database URL (not migrated)
#   def test_something(db_engine): ...   # an engine on a fresh database migrated to head
#
# Both are parametrized ["sqlite", "postgresql"]; select one with `-k sqlite` / `-k postgresql`
# (or `-m "not postgres"`). The PostgreSQL server is Debian's, started once per test session in a
# temporary folder and stopped at the end; each test gets its own database on it.

_PG_MISSING = (
    "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: run `make test` "
    "(it installs the apt package `postgresql`) or `apt-get install postgresql`"
)


def _postgres_bin_dir() -> Path | None:
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")]
    found = [d for d in found if (d / "initdb").exists() and d.parent.name.isdigit()]
    return max(found, key=lambda d: int(d.parent.name)) if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(command: list[str | Path], runas: list[str]) -> None:
    subprocess.run([*runas, *map(str, command)], check=True, capture_output=True, text=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster for the session; yields the URL of its `postgres` db."""
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        pytest.fail(_PG_MISSING, pytrace=False)
    runas: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="interviewer-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail(f"no `postgres` system user: {_PG_MISSING}", pytrace=False)
        runas = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres", "postgres")
    data, log = base / "data", base / "server.log"
    try:
        _run(
            [bin_dir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync"],
            runas,
        )
        port = 0
        for _ in range(3):  # the free port can be taken between choosing and binding it
            port = _free_port()
            options = (
                f"-p {port} -k {base} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            start = [bin_dir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o", options]
            try:
                _run([*start, "start"], runas)
                break
            except subprocess.CalledProcessError:
                continue
        else:
            server_log = log.read_text() if log.exists() else "(no log)"
            pytest.fail(f"PostgreSQL did not start; server log:\n{server_log}", pytrace=False)
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        finally:
            _run([bin_dir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"], runas)
    except subprocess.CalledProcessError as err:
        pytest.fail(f"{err.cmd[len(runas)]} failed: {err.stderr or err.stdout}", pytrace=False)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh empty database on each engine: SQLite in tmp_path, a new PostgreSQL database."""
    from interviewer.store.db import dispose_engine

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'interviewer.db'}"
        yield url
        dispose_engine(url)
        return

    import psycopg

    admin = request.getfixturevalue("postgres_server")
    admin_dsn = admin.replace("postgresql+psycopg://", "postgresql://")
    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    yield url
    dispose_engine(url)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_engine(db_url: str):
    """An engine on a fresh database, migrated to head (as `interviewer db upgrade` would)."""
    from interviewer.store.db import create_db_engine, migrate

    engine = create_db_engine(db_url)
    migrate(engine)
    return engine


# --- Model weights: one install shared by every test module ------------------------------------
#
#   def test_something(model_dir): ...   # the default model dir, every model assembled
#
# Locate files with interviewer.weights (whisper_checkpoint, llm_dir, ...), passing model_dir.


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The default settings model dir after `weights.install()`: seconds when already assembled
    (`make test` runs `interviewer models install` first); minutes, and 6 GB of RAM, if not."""
    from interviewer import weights
    from interviewer.config import get_settings

    weights.install()
    return Path(get_settings().model_dir).expanduser().absolute()


# --- S3: a real S3-compatible server for the session (Ceph RGW, see tests/s3_server.py) ---------
#
#   def test_something(s3_server): ...   # .endpoint, .access_key, .secret_key; make your bucket


@pytest.fixture(scope="session")
def s3_server() -> Iterator[object]:
    import s3_server as ceph

    if not ceph.available():
        pytest.fail(ceph.MISSING, pytrace=False)
    with ceph.CephS3() as server:
        yield server
