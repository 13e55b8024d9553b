"""Which dtype the judge computes in on this machine: float32 or bfloat16, from a measurement.

The judge's time is almost all matrix products, and which dtype multiplies them faster depends
on the CPU: float32 ~1.5x faster on the machine the judge was tuned on (AVX512-BF16, no AMX),
bfloat16 2.3x faster on an AMD EPYC and ~4-8x on an Intel Xeon with AMX (``bench/gemm.py``).
Scores differ slightly between dtypes, so the dtype the judge was tuned in (float32) stays
unless bfloat16 is clearly faster (``BFLOAT16_GAIN``). One short product per dtype decides it;
the figures are kept per machine in ``<data_dir>/judge_dtype.json``, keyed by what makes them
(the CPU's model name and flags, the torch build), so each machine measures once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TypedDict

from interviewer.config import Settings

log = logging.getLogger(__name__)

TUNED = "float32"
"""The dtype the judge was tuned in (scripts/asag_tune.py, docs/scoring.md's figures)."""
BFLOAT16_GAIN = 1.3
"""bfloat16 is chosen only when it multiplies at least this many times faster: below that,
the gain does not pay for leaving the dtype the judge was tuned in, and a busy machine moves
single figures a lot (on a loaded 2-core AMX Xeon, bfloat16 read 270-975 GFLOPS)."""
SHAPE = (256, 1536, 2048)
"""The choice's product: 256 tokens of Qwen2.5-1.5B's hidden size (1536) through a 2048-wide
layer. Smaller than the judge's real products (``bench/gemm.py``: 600 x 1536 -> 8960) so that
the measurement takes 0.2-0.25 s on a busy 2-core Xeon; there it ranked the dtypes as the full
product did."""
REPEAT = 3
CACHE_NAME = "judge_dtype.json"
CPUINFO = Path("/proc/cpuinfo")
_CPU_FIELDS = ("model name", "flags", "Features", "CPU implementer", "CPU part", "vendor_id")
_logged: set[str] = set()


class Figures(TypedDict):
    float32: float  # GFLOPS
    bfloat16: float
    seconds: float  # the measurement's wall time


def judge_dtype(settings: Settings, tuned: str = TUNED) -> str:
    """The dtype a judge built without one computes in: ``settings.judge_dtype`` when forced,
    else bfloat16 if this machine multiplies it clearly faster, else ``tuned``."""
    if settings.judge_dtype != "auto":
        return settings.judge_dtype
    key = machine_key()
    path = Path(settings.data_dir) / CACHE_NAME
    machines = _read(path)
    figures = machines.get(key)
    if figures is None:
        figures = measure_choice()
        machines[key] = figures
        _write(path, machines)
    choice = choose(figures, tuned)
    if key not in _logged:
        _logged.add(key)
        log.info(
            "judge dtype %s: %.0f GFLOPS in float32, %.0f in bfloat16 on one thread "
            "(measured in %.2f s; %s, INTERVIEWER_JUDGE_DTYPE forces one)",
            choice,
            figures["float32"],
            figures["bfloat16"],
            figures["seconds"],
            path,
        )
    return choice


def choose(figures: Mapping[str, float], tuned: str = TUNED) -> str:
    return "bfloat16" if figures["bfloat16"] >= BFLOAT16_GAIN * figures["float32"] else tuned


def machine_key(cpuinfo: str | None = None) -> str:
    """A digest of what the figures depend on: the CPU (model name and flags of its first
    processor in /proc/cpuinfo, or what ``platform`` says elsewhere), the torch build (its
    version pins the math libraries it ships: oneDNN, MKL), and the measured shape."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    fields = []
    for line in cpuinfo.split("\n\n", 1)[0].splitlines():
        name, _, value = line.partition(":")
        if name.strip() in _CPU_FIELDS:
            fields.append(f"{name.strip()}={' '.join(value.split())}")
    if not fields:
        fields = [platform.machine(), platform.processor()]
    try:
        torch = version("torch")
    except PackageNotFoundError:
        torch = "none"
    identity = "\n".join([*fields, f"torch={torch}", f"shape={SHAPE}", f"repeat={REPEAT}"])
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def measure(tokens: int, hidden: int, out: int, *, repeat: int = REPEAT) -> dict[str, float]:
    """GFLOPS of one ``tokens x hidden -> out`` product (as ``nn.Linear`` computes it) on one
    thread, per dtype: the median of ``repeat`` runs after a warm-up (bfloat16's first call
    also prepares its kernels). The thread count is restored afterwards."""
    # Lazy: torch takes seconds to import, and a cached choice needs no measurement.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(tokens, hidden, generator=generator)
        w = torch.randn(out, hidden, generator=generator)
        flop = 2 * tokens * hidden * out
        gflops = {}
        for dtype in (torch.float32, torch.bfloat16):
            a, b = x.to(dtype), w.to(dtype)
            torch.nn.functional.linear(a, b)  # warm-up
            seconds = []
            for _ in range(repeat):
                started = time.perf_counter()
                torch.nn.functional.linear(a, b)
                seconds.append(time.perf_counter() - started)
            gflops[str(dtype).removeprefix("torch.")] = flop / statistics.median(seconds) / 1e9
        return gflops
    finally:
        torch.set_num_threads(threads)


def measure_choice() -> Figures:
    """The short measurement the choice is made from (``SHAPE``, ``REPEAT``); its time leaves
    out importing torch, which the judge's load pays anyway."""
    import torch  # noqa: F401  # lazy, as in measure(): imported before the clock starts

    started = time.perf_counter()
    gflops = measure(*SHAPE, repeat=REPEAT)
    return Figures(
        float32=round(gflops["float32"], 1),
        bfloat16=round(gflops["bfloat16"], 1),
        seconds=round(time.perf_counter() - started, 3),
    )


def _read(path: Path) -> dict[str, Figures]:
    """The machines' figures, or none when the file is missing, unreadable or not ours (it is
    then measured again and rewritten whole)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        machines = data["machines"]
        return {
            str(key): Figures(
                float32=float(f["float32"]),
                bfloat16=float(f["bfloat16"]),
                seconds=float(f["seconds"]),
            )
            for key, f in machines.items()
        }
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        log.warning("%s: unreadable (%s); measuring the judge's dtype again", path, err)
        return {}


def _write(path: Path, machines: dict[str, Figures]) -> None:
    """Atomically (a half-written file is never read), and never fatal: without a writable
    data_dir the next process measures again."""
    data = {
        "about": "matrix-product speed per machine, from which the judge's dtype is chosen "
        "(interviewer/scoring/dtype.py); delete to measure again",
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
        "machines": machines,
    }
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        tmp = Path(name)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)
    except OSError as err:
        log.warning("%s: cannot keep the judge's dtype measurement (%s)", path, err)
        if tmp is not None:
            tmp.unlink(missing_ok=True)
