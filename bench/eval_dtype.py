"""`interviewer eval asag` with the judge in a dtype of your choosing, not this machine's.

Which dtype is faster depends on the CPU (``bench/gemm.py``) and the judge picks it per machine
(``interviewer/scoring/dtype.py``), but scores differ between dtypes and the judge was tuned in
float32 (``judge.DTYPES``). This measures the agreement either dtype gives, with the eval's own
arguments after the dtype:

    .venv/bin/python bench/eval_dtype.py bfloat16 saf_uq.csv --limit 40

It is ``INTERVIEWER_JUDGE_DTYPE=bfloat16 interviewer eval asag ...``; a ``--cache`` file may be
shared between dtypes, whose scores it keys apart.
"""

from __future__ import annotations

import os
import sys

from interviewer.cli import app


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] not in ("float32", "bfloat16"):
        sys.exit(__doc__)
    os.environ["INTERVIEWER_JUDGE_DTYPE"] = sys.argv[1]  # read when the judge is built
    app(["eval", "asag", *sys.argv[2:]])


if __name__ == "__main__":
    main()
