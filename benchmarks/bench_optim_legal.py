"""Microseconds per step of the legal evaluations of a step of a run: the arrays
(``reference.batch.optim_legal.sgd_evaluations_batch``) against the scalar function
(``reference.optim_rounded.sgd_evaluations``), per format, on later steps (with buffers) of a
heavy option set (momentum=0.9, dampening=0.1, weight_decay=1e-4 rounded to the format).

    python benchmarks/bench_optim_legal.py [--steps 65536] [--scalar-steps 200]
                                           [--formats float16,...] [--model ieee] [--memory]

The batch figure is one call on a chunk of ``--steps`` steps (the fastest of ``--repeat``);
the scalar one the mean over ``--scalar-steps`` of them.  ``--memory``: the peak of numpy's
allocations during one call (tracemalloc), in a second call.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from fractions import Fraction

import numpy as np

from neuronspec.cases.options import OptionSet, reference_options
from neuronspec.cases.runs import STEP_REGIMES, draw_step
from reference.batch.optim_legal import sgd_evaluations_batch
from reference.formats import get_format
from reference.optim_rounded import sgd_evaluations

HEAVY = OptionSet(momentum=Fraction("0.9"), dampening=Fraction("0.1"),
                  weight_decay=Fraction("1e-4"))


def later_steps(fmt, options: dict, count: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    steps: list = []
    while len(steps) < count:
        state, step = draw_step(fmt, options, rng, STEP_REGIMES[len(steps) % 3])
        if state.buf_w is not None:
            steps.append((state, step))
    return steps


def columns(steps: list) -> dict:
    cols = {k: np.array([float(getattr(s, k)) for s, _ in steps])
            for k in ("w", "b", "buf_w", "buf_b")}
    for j, k in enumerate(("x", "t", "lr")):
        cols[k] = np.array([step[j] for _, step in steps])
    return cols


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=65536)
    parser.add_argument("--scalar-steps", type=int, default=200)
    parser.add_argument("--formats", default="float16,bfloat16,float32,float64")
    parser.add_argument("--model", default="ieee")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--memory", action="store_true")
    args = parser.parse_args()
    print(f"{'format':9} {'names':>5} {'batch us/step':>13} {'scalar us/step':>14} "
          f"{'speed-up':>8} {'undecided':>9}" + ("  peak MiB" if args.memory else ""))
    for name in args.formats.split(","):
        fmt = get_format(name)
        mapping = HEAVY.for_format(fmt)
        options = reference_options(mapping)
        steps = later_steps(fmt, mapping, args.steps)
        cols = columns(steps)
        sgd_evaluations_batch(fmt, columns(steps[:64]), options, args.model)  # (warm-up)
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            out, undecided = sgd_evaluations_batch(fmt, cols, options, args.model)
            best = min(best, time.perf_counter() - start)
            del out
        sample = steps[:args.scalar_steps]
        start = time.perf_counter()
        for state, step in sample:
            names = sgd_evaluations(fmt, state, *step, options, args.model)
        scalar = (time.perf_counter() - start) / len(sample)
        batch = best / len(steps)
        line = (f"{name:9} {len(names):5d} {batch * 1e6:13.2f} {scalar * 1e6:14.0f} "
                f"{scalar / batch:8.0f} {undecided.mean():9.2%}")
        if args.memory:
            tracemalloc.start()
            out, _ = sgd_evaluations_batch(fmt, cols, options, args.model)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            del out
            line += f"  {peak / 2**20:8.0f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
