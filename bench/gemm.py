"""How fast does this CPU multiply the judge's matrices, in float32 and in bfloat16?

The judge's time is almost all matrix products (``aten::mm``), and which dtype is faster
depends on the CPU: on the machine the judge was tuned on, float32 ran ~1.5x faster than
bfloat16; on an AMD EPYC (2026-12-07) bfloat16 ran 2.3x faster than float32; on an Intel Xeon
with AMX ~4x or more. One thread, one product of the judge's shape (600 tokens x 1536 -> 8960,
Qwen2.5-1.5B's MLP), then the short one the judge's dtype is chosen from
(``interviewer/scoring/dtype.py``, cached per machine in ``<data_dir>/judge_dtype.json``):

    .venv/bin/python bench/gemm.py [--repeat 5]
"""

from __future__ import annotations

import argparse

from interviewer.scoring.dtype import BFLOAT16_GAIN, REPEAT, SHAPE, choose, measure

TOKENS, HIDDEN, MLP = 600, 1536, 8960


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for label, shape, repeat in (
        ("judge's MLP", (TOKENS, HIDDEN, MLP), args.repeat),
        ("dtype choice", SHAPE, REPEAT),
    ):
        gflops = measure(*shape, repeat=repeat)
        print(f"{label} ({' x '.join(map(str, shape))}, median of {repeat}):")
        for dtype, value in gflops.items():
            print(f"  {dtype:9s} {value:6.1f} GFLOPS")
    print(f"auto picks {choose(gflops)} here (bfloat16 only when >= {BFLOAT16_GAIN}x faster)")


if __name__ == "__main__":
    main()
