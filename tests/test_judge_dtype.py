"""The judge's dtype: forced by a setting, or measured once per machine and cached.

The measurements are real (torch, one short product per dtype); only which CPU the cache key
describes is swapped, by pointing ``dtype.CPUINFO`` at another file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from interviewer.config import Settings, get_settings
from interviewer.scoring import asag, dtype
from interviewer.scoring.judge import Judge

SMALL = "smollm2-135m"
CPU = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile

processor\t: 1
model name\t: Intel(R) Xeon(R) Processor
"""


@pytest.fixture
def measured(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int]]:
    """Every real measurement's shape, in order."""
    calls: list[tuple[int, int, int]] = []
    real = dtype.measure

    def counting(tokens: int, hidden: int, out: int, *, repeat: int = dtype.REPEAT):
        calls.append((tokens, hidden, out))
        return real(tokens, hidden, out, repeat=repeat)

    monkeypatch.setattr(dtype, "measure", counting)
    return calls


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., Settings]]:
    """Settings as a process reads them, with a fresh data_dir: ``env(judge_dtype="...")``."""

    def apply(**values: str) -> Settings:
        for name, value in values.items():
            monkeypatch.setenv(f"INTERVIEWER_{name.upper()}", value)
        get_settings.cache_clear()
        return get_settings()

    monkeypatch.setenv("INTERVIEWER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("INTERVIEWER_JUDGE_DTYPE", raising=False)
    get_settings.cache_clear()
    yield apply
    monkeypatch.undo()
    get_settings.cache_clear()


def test_a_forced_dtype_wins_without_measuring(tmp_path: Path, measured: list) -> None:
    for forced in ("float32", "bfloat16"):
        settings = Settings(data_dir=tmp_path, judge_dtype=forced)
        assert dtype.judge_dtype(settings) == forced
    assert measured == [] and not (tmp_path / dtype.CACHE_NAME).exists()


def test_auto_measures_once_then_reads_the_cache(tmp_path: Path, measured: list) -> None:
    settings = Settings(data_dir=tmp_path / "new", judge_dtype="auto")
    first = dtype.judge_dtype(settings)
    assert first in ("float32", "bfloat16") and measured == [dtype.SHAPE]
    cached = json.loads((tmp_path / "new" / dtype.CACHE_NAME).read_text())["machines"]
    figures = cached[dtype.machine_key()]
    assert figures["float32"] > 0 and figures["bfloat16"] > 0
    assert 0 < figures["seconds"] < 1  # short enough to run at every first start
    assert first == dtype.choose(figures)
    assert dtype.judge_dtype(settings) == first and len(measured) == 1


def test_the_choice_keeps_float32_unless_bfloat16_is_clearly_faster() -> None:
    assert dtype.choose({"float32": 100, "bfloat16": 125}) == "float32"
    assert dtype.choose({"float32": 100, "bfloat16": 130}) == "bfloat16"
    assert dtype.choose({"float32": 140, "bfloat16": 90}) == "float32"


@pytest.mark.parametrize("content", ["{not json", '{"machines": []}', '{"machines": {"k": 1}}'])
def test_a_corrupt_cache_is_measured_again_and_replaced(
    tmp_path: Path, measured: list, content: str
) -> None:
    path = tmp_path / dtype.CACHE_NAME
    path.write_text(content)
    settings = Settings(data_dir=tmp_path, judge_dtype="auto")
    choice = dtype.judge_dtype(settings)
    assert len(measured) == 1
    machines = json.loads(path.read_text())["machines"]
    assert list(machines) == [dtype.machine_key()]
    assert [p.name for p in tmp_path.iterdir()] == [dtype.CACHE_NAME]  # no temporary left
    assert dtype.judge_dtype(settings) == choice and len(measured) == 1


def test_the_key_follows_the_cpu(
    tmp_path: Path, measured: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert dtype.machine_key(CPU) == dtype.machine_key(CPU)
    # the CPU's model and flags count, other processors' lines and spacing do not
    assert dtype.machine_key(CPU) == dtype.machine_key(CPU.split("\n\n")[0].replace("\t", " "))
    assert dtype.machine_key(CPU) != dtype.machine_key(CPU.replace(" amx_bf16 amx_tile", ""))
    assert dtype.machine_key(CPU) != dtype.machine_key(CPU.replace("Xeon(R)", "EPYC"))
    assert dtype.machine_key("") != dtype.machine_key(CPU)
    # a data_dir shared by two machines keeps both machines' figures
    settings = Settings(data_dir=tmp_path, judge_dtype="auto")
    monkeypatch.setattr(dtype, "CPUINFO", tmp_path / "one")
    dtype.CPUINFO.write_text(CPU)
    dtype.judge_dtype(settings)
    monkeypatch.setattr(dtype, "CPUINFO", tmp_path / "other")
    dtype.CPUINFO.write_text(CPU.replace(" amx_bf16 amx_tile", ""))
    dtype.judge_dtype(settings)
    dtype.judge_dtype(settings)
    assert len(measured) == 2
    machines = json.loads((tmp_path / dtype.CACHE_NAME).read_text())["machines"]
    assert len(machines) == 2


def test_a_judge_without_a_dtype_gets_the_chosen_one(
    env: Callable[..., Settings], model_dir: Path, measured: list
) -> None:
    settings = env()
    judge = Judge(SMALL, model_dir).load()
    assert judge.dtype == dtype.judge_dtype(settings) and len(measured) == 1
    assert str(next(judge.model.parameters()).dtype) == f"torch.{judge.dtype}"
    assert Judge(SMALL, model_dir, dtype="float32").dtype == "float32"  # explicit wins
    env(judge_dtype="bfloat16")
    assert Judge(SMALL, model_dir).dtype == "bfloat16"
    assert Judge(SMALL, model_dir, dtype="float32").dtype == "float32"
    assert len(measured) == 1


def test_eval_asag_keeps_scores_of_each_dtype_apart(
    env: Callable[..., Settings], model_dir: Path, tmp_path: Path
) -> None:
    assert asag.judge_fingerprint("float32") != asag.judge_fingerprint("bfloat16")
    cache = tmp_path / "cache.jsonl"
    row = asag.GradedAnswer(
        line=2,
        question="What does a closed circuit let through?",
        reference_answer="A closed circuit lets current flow through it.",
        answer="It lets the current flow.",
        human_score=1,
        max_score=1,
    )
    env(judge_dtype="float32")
    scores = [asag.judge_scorer(SMALL, model_dir, cache)(row)]
    env(judge_dtype="bfloat16")
    scores.append(asag.judge_scorer(SMALL, model_dir, cache)(row))  # judged, not read back
    keys = [json.loads(line)["key"] for line in cache.read_text().splitlines()]
    assert len(keys) == 2 and keys[0] != keys[1]
    assert all(0 <= s <= 1 for s in scores)
