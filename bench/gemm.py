"""How fast does this CPU multiply the judge's matrices, in float32 and in bfloat16?

The judge's time is almost all matrix products (``aten::mm``), and which dtype is faster
depends on the CPU: on the machine the judge was tuned on, float32 ran ~1.5x faster than
bfloat16; on an AMD EPYC (2026-12-07) bfloat16 ran 2.3x faster than float32. One thread, one
product of the judge's shape (600 tokens x 1536 -> 8960, Qwen2.5-1.5B's MLP):

    .venv/bin/python bench/gemm.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

TOKENS, HIDDEN, MLP = 600, 1536, 8960


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(TOKENS, HIDDEN, generator=generator)
    w = torch.randn(MLP, HIDDEN, generator=generator)
    flop = 2 * TOKENS * HIDDEN * MLP
    for dtype in (torch.float32, torch.bfloat16):
        a, b = x.to(dtype), w.to(dtype)
        torch.nn.functional.linear(a, b)  # warm-up
        seconds = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            torch.nn.functional.linear(a, b)
            seconds.append(time.perf_counter() - started)
        print(f"{dtype!s:16s} {flop / statistics.median(seconds) / 1e9:6.1f} GFLOPS (median)")


if __name__ == "__main__":
    main()
