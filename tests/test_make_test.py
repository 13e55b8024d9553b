"""scripts/test.sh, what `make test` runs: CI is green only if the installs, the suite and the
sampled Qwen test all pass, and every run prints its slowest tests. Checked with a stand-in
interpreter that records its arguments and exits as told, so each failure is seen where it
happens."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "test.sh"


def _run(tmp_path: Path, install: str, *args: str, main: int = 0, qwen: int = 0) -> tuple:
    calls = tmp_path / "calls"
    python = tmp_path / "python"
    python.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> {calls}\n'
        'case "$*" in *"-m qwen_sample"*) sleep 0.3; exit "$QWEN_RC";; esac\n'
        'exit "$MAIN_RC"\n'
    )
    python.chmod(0o755)
    env = {**os.environ, "MAIN_RC": str(main), "QWEN_RC": str(qwen)}
    done = subprocess.run(
        ["bash", str(SCRIPT), str(python), install, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = calls.read_text().splitlines() if calls.exists() else []
    return done.returncode, lines, done.stdout


@pytest.mark.parametrize(("main", "qwen", "status"), [(0, 0, 0), (1, 0, 1), (0, 1, 1), (2, 3, 1)])
def test_the_status_fails_if_either_run_fails(
    tmp_path: Path, main: int, qwen: int, status: int
) -> None:
    code, calls, out = _run(tmp_path, "true", main=main, qwen=qwen)
    assert code == status, out
    suite, qwen_run = sorted(calls, key=lambda c: "--basetemp" in c)
    assert suite == "-m pytest -q -ra --durations=25 -n 2 --dist loadfile -m not qwen_sample"
    assert qwen_run.startswith(
        "-m pytest -q -ra --durations=25 -m qwen_sample -p no:cacheprovider --basetemp"
    )
    assert "waiting for the sampled Qwen test" in out
    # its temporary folder (log, basetemp) is gone afterwards
    assert not Path(qwen_run.split("--basetemp ")[1]).parent.exists()


def test_a_failed_install_fails_before_the_suite(tmp_path: Path) -> None:
    code, calls, out = _run(tmp_path, "false")
    assert code == 1
    assert "failed to install" in out
    assert not any("not qwen_sample" in c for c in calls)


def test_with_arguments_one_plain_run_after_the_installs(tmp_path: Path) -> None:
    marker = tmp_path / "installed"
    code, calls, _ = _run(tmp_path, f"touch {marker}", "-k", "x", main=0)
    assert code == 0 and marker.exists()
    assert calls == ["-m pytest -q -ra --durations=25 -k x"]
    (tmp_path / "again").mkdir()
    code, calls, _ = _run(tmp_path / "again", "false", "-k", "x")
    assert code == 1 and calls == []
