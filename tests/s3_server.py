"""A real S3-compatible server for tests: Ceph's RADOS Gateway on a one-OSD Ceph cluster.

Debian's ``radosgw`` (Ceph 16) is the S3 server Ceph deployments run in production; it needs
a RADOS cluster behind it, so this starts the smallest one that works: one monitor and one OSD
keeping its objects in memory (``memstore``), no authentication, all on 127.0.0.1 in a
temporary folder. It starts in a few seconds and uses ~150 MB. ``make test`` installs the
packages (``ceph-mon ceph-osd radosgw`` in the Makefile's APT_TEST).

Why not the alternatives: moto's server mode and npm's ``s3rver`` are emulators written for
tests; the MinIO and Garage servers are not in PyPI, npm or Debian (PyPI's ``minio`` is only a
client). See docs/deploy.md, "Recordings in an S3-compatible bucket".

    with CephS3() as s3:           # or the ``s3_server`` fixture in tests/test_storage.py
        s3.endpoint, s3.access_key, s3.secret_key
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

PACKAGES = "ceph-mon ceph-osd radosgw"
MISSING = (
    "Ceph's S3 gateway is not installed (radosgw, ceph-mon, ceph-osd): run `make test` "
    f"(it installs them) or `apt-get install --no-install-recommends {PACKAGES}`"
)


def available() -> bool:
    return all(shutil.which(b) for b in ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CephS3:
    """Start (``__enter__``) and stop (``__exit__``) a throwaway Ceph cluster with an S3 gateway."""

    access_key = "INTERVIEWERTEST"
    secret_key = "interviewer-test-secret"

    def __init__(self, timeout_s: float = 90.0) -> None:
        self.timeout_s = timeout_s
        self.base = Path(tempfile.mkdtemp(prefix="interviewer-ceph-"))
        self.mon_port = _free_port()
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.conf = self.base / "ceph.conf"
        self._procs: list[subprocess.Popen[bytes]] = []

    # -- lifecycle --

    def __enter__(self) -> CephS3:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _ceph(self, *args: str, timeout: float = 30) -> str:
        out = subprocess.run(
            ["ceph", "-c", str(self.conf), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return out.stdout.strip()

    def _spawn(self, *cmd: str) -> None:
        log = open(self.base / f"{Path(cmd[0]).name}.out", "wb")  # noqa: SIM115 (kept open)
        self._procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))

    def _start(self) -> None:
        b = self.base
        for sub in ("mon", "osd", "run", "log", "rgw"):
            (b / sub).mkdir()
        fsid = str(uuid.uuid4())
        mon = f"v2:127.0.0.1:{self.mon_port}"
        self.conf.write_text(
            f"""[global]
fsid = {fsid}
mon host = {mon}
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
ms bind msgr1 = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = 1073741824
run dir = {b}/run
admin socket = {b}/run/$name.asok
log file = {b}/log/$name.log
mon data = {b}/mon/$cluster-$id
osd data = {b}/osd/$cluster-$id
keyring = {b}/keyring
"""
        )
        kr = str(b / "keyring")
        run = {"check": True, "capture_output": True, "timeout": 60}
        subprocess.run(
            ["ceph-authtool", "--create-keyring", kr, "--gen-key", "-n", "mon.",
             "--cap", "mon", "allow *"],
            **run,
        )  # fmt: skip
        monmap = str(b / "monmap")
        subprocess.run(
            ["monmaptool", "--create", "--addv", "a", f"[{mon}]", "--fsid", fsid, monmap], **run
        )
        subprocess.run(
            ["ceph-mon", "-c", str(self.conf), "--mkfs", "-i", "a", "--monmap", monmap,
             "--keyring", kr],
            **run,
        )  # fmt: skip
        self._spawn("ceph-mon", "-f", "-c", str(self.conf), "-i", "a")
        deadline = time.monotonic() + self.timeout_s
        osd_uuid = str(uuid.uuid4())
        osd_id = self._retry(lambda: self._ceph("osd", "new", osd_uuid, timeout=10), deadline)
        (b / "osd" / f"ceph-{osd_id}").mkdir()
        subprocess.run(
            ["ceph-osd", "-c", str(self.conf), "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid],
            **run,
        )
        self._spawn("ceph-osd", "-f", "-c", str(self.conf), "-i", osd_id)
        self._spawn(
            "radosgw", "-f", "-c", str(self.conf), "-n", "client.admin",
            f"--rgw-frontends=beast endpoint=127.0.0.1:{self.port}", f"--rgw-data={b}/rgw",
        )  # fmt: skip
        self._retry(self._http_up, deadline)
        self._retry(
            lambda: subprocess.run(
                ["radosgw-admin", "-c", str(self.conf), "user", "create", "--uid", "tests",
                 "--display-name", "tests", "--access-key", self.access_key,
                 "--secret-key", self.secret_key],
                check=True, capture_output=True, timeout=30,
            ),
            deadline,
        )  # fmt: skip

    def _http_up(self) -> None:
        with contextlib.suppress(urllib.error.HTTPError):  # any HTTP answer: it listens
            urllib.request.urlopen(self.endpoint, timeout=2).close()

    def _retry(self, fn, deadline: float):  # type: ignore[no-untyped-def]
        while True:
            for proc in self._procs:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{proc.args[0]} exited with {proc.returncode}; logs in {self.base}"
                    )
            try:
                return fn()
            except (OSError, subprocess.SubprocessError) as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"Ceph S3 did not start: {exc}; logs in {self.base}"
                    ) from exc
                time.sleep(0.5)

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self._procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._procs.clear()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.base)
