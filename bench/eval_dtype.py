"""`interviewer eval asag` with the judge in another dtype than the shipped one.

Which dtype is faster depends on the CPU (``bench/gemm.py``), but scores differ between dtypes,
and the judge was tuned in float32 (``judge.DTYPES``). This measures the agreement a switch
would give, with the eval's own arguments after the dtype:

    .venv/bin/python bench/eval_dtype.py bfloat16 saf_uq.csv --limit 40

Give it no ``--cache`` file that a float32 run wrote: the cache's keys do not hold the dtype.
"""

from __future__ import annotations

import sys

from interviewer.cli import app
from interviewer.scoring import judge


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] not in ("float32", "bfloat16"):
        sys.exit(__doc__)
    for model in judge.DTYPES:
        judge.DTYPES[model] = sys.argv[1]
    app(["eval", "asag", *sys.argv[2:]])


if __name__ == "__main__":
    main()
