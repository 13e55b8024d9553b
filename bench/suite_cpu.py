"""Where the test suite's CPU goes: machine-wide CPU seconds (from /proc/stat) and wall seconds
per test, the busiest first, and the totals. Machine-wide because most of a test's CPU is
spent outside pytest's process: the server, whisper and scoring workers, Chromium.

    .venv/bin/python bench/suite_cpu.py                        # the suite, as make test runs it
    .venv/bin/python bench/suite_cpu.py -- tests/test_web_browser.py -k shipped

Run it on an otherwise idle machine: anything else running is counted too. Arguments after
``--`` go to pytest (default: ``-m "not qwen_sample"``, the suite without the sampled
Qwen test, which runs beside it at nice 19).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest


def _cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot (all but idle and iowait)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / 100.0


class CpuPerTest:
    def __init__(self) -> None:
        self.rows: list[tuple[float, float, str]] = []

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: Any, nextitem: Any) -> Any:
        cpu, wall = _cpu_seconds(), time.monotonic()
        yield
        self.rows.append((_cpu_seconds() - cpu, time.monotonic() - wall, item.nodeid))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        write = terminalreporter.write_line
        write("")
        write(f"{'CPU s':>8} {'wall s':>8}  test (machine-wide CPU, busiest first)")
        for cpu, wall, nodeid in sorted(self.rows, reverse=True)[:40]:
            write(f"{cpu:8.1f} {wall:8.1f}  {nodeid}")
        cpu = sum(r[0] for r in self.rows)
        wall = sum(r[1] for r in self.rows)
        write(f"{cpu:8.0f} {wall:8.0f}  all {len(self.rows)} tests: {cpu / wall:.2f} cores busy")


def main() -> int:
    args = sys.argv[1:]
    args = args[args.index("--") + 1 :] if "--" in args else ["-m", "not qwen_sample"]
    return pytest.main(["-q", "-p", "no:cacheprovider", *args], plugins=[CpuPerTest()])


if __name__ == "__main__":
    sys.exit(main())
