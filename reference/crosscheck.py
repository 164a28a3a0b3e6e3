"""The batch verdict against the scalar one (mpmath exact values, ``bounds.case_bounds``), case
by case, on outputs placed around the bound.

For each case (the soundness regimes, whose draws include signed zeros, subnormals, the
smallest normal, the largest finite value and 1), each quantity gets one of: the correctly
rounded exact value, the exact value moved by a random fraction 0.5 .. 1.5 of its bound (then
rounded to the format), a neighbour of the latter, infinity, or (narrow formats) a binary64
value that is not in the format.  A disagreement is a case and quantity where the two paths
differ on "in the bounded domain" or on "violation".
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from . import batch
from .bounds import IEEE, OutOfDomain, case_bounds
from .exact import exact_step
from .formats import Format, get_format
from .regimes import REGIMES, regime_cases

__all__ = ["crosscheck", "crosscheck_chunk", "outputs_around_bounds"]


def outputs_around_bounds(fmt: Format, cases: dict, rng: np.random.Generator) -> dict:
    """Outputs for every quantity, spread over pass, fail and the boundary between them."""
    work = batch.work_for(fmt)
    args = [np.asarray(cases[k], dtype=work.dtype) for k in batch.INPUTS]
    nodes = batch.exact_nodes(fmt, *args)
    bounds = batch.batch_bounds(fmt, *args, nodes=nodes)
    n = len(args[0])
    out = {}
    for q in batch.QUANTITIES:
        node = nodes[batch.NODES[q]]
        bound = np.where(bounds[q][1], 0, bounds[q][0])
        kind = rng.integers(0, 20, n)
        sign = np.where(rng.random(n) < 0.5, -1, 1).astype(work.dtype)
        f = rng.uniform(0.5, 1.5, n).astype(work.dtype)
        moved = batch.round_to_format(fmt, node.hi + sign * f * bound, None, work)
        value = np.where(kind < 4, batch.round_to_format(fmt, node.hi, node.lo, work), moved)
        value = value.astype(np.float64)
        step = np.where(kind % 2 == 0, np.inf, -np.inf)
        if fmt.name in ("float16", "float32"):
            dt = np.float16 if fmt.name == "float16" else np.float32
            neighbour = np.nextafter(value.astype(dt), step.astype(dt)).astype(np.float64)
        else:
            neighbour = np.nextafter(value, step) if fmt.name == "float64" else value
        with np.errstate(invalid="ignore"):
            value = np.where((kind >= 14) & (kind < 18) & np.isfinite(value), neighbour, value)
        value[kind == 18] = np.inf
        if fmt.p < 53:
            odd = kind == 19
            value[odd] = value[odd] + np.abs(value[odd]) * 2.0**-40 + 2.0**-300
        out[q] = value
    return out


def _scalar_verdict(fmt: Format, case: tuple, outputs: dict) -> dict:
    bounds = case_bounds(fmt, dict(zip(batch.INPUTS, case)), IEEE)
    exact = exact_step(*case).as_fractions()
    verdict = {}
    for q in batch.QUANTITIES:
        if isinstance(bounds[q], OutOfDomain):
            verdict[q] = (True, False, math.nan)
            continue
        c = outputs[q]
        if not math.isfinite(c):
            verdict[q] = (False, True, math.inf)
            continue
        err = abs(Fraction(c) - exact[q])
        b = Fraction(bounds[q])
        bad = err > b or not fmt.contains(c)
        verdict[q] = (False, bad, float(err / b) if b else (0.0 if err == 0 else math.inf))
    return verdict


def crosscheck_chunk(fmt: "Format | str", seed: int, index: int, n: int) -> dict:
    """Both verdicts on ``n`` cases (chunk ``index`` of the run with ``seed``); counts and the
    first disagreements."""
    fmt = get_format(fmt)
    rng = np.random.default_rng([seed, index, 7])
    with np.errstate(all="ignore"):
        return _chunk(fmt, rng, n)


def _chunk(fmt: Format, rng: np.random.Generator, n: int) -> dict:
    cases: list = []
    for k, regime in enumerate(REGIMES):
        size = n // len(REGIMES) + (1 if k < n % len(REGIMES) else 0)
        if size:
            cases += regime_cases(fmt, regime, rng, size)
    cols = {k: np.array([c[i] for c in cases]) for i, k in enumerate(batch.INPUTS)}
    outputs = outputs_around_bounds(fmt, cols, rng)
    verdict = batch.check_batch(fmt, cols, outputs)
    counts = {"cases": len(cases), "checked": 0, "violations": 0, "out_of_domain": 0,
              "disagreements": 0, "ratio_mismatches": 0}
    examples = []
    for i, case in enumerate(cases):
        scalar = _scalar_verdict(fmt, case, {q: float(outputs[q][i]) for q in outputs})
        for q, (ood, bad, ratio) in scalar.items():
            v_ood = bool(verdict.out_of_domain[q][i])
            v_bad = bool(verdict.violation[q][i])
            counts["out_of_domain"] += ood
            counts["checked"] += not ood
            counts["violations"] += bad
            if ood != v_ood or bad != v_bad:
                counts["disagreements"] += 1
                if len(examples) < 5:
                    examples.append({"case": list(case), "quantity": q, "output": outputs[q][i],
                                     "scalar": [ood, bad, ratio], "batch": [v_ood, v_bad]})
            elif not ood and math.isfinite(ratio):
                v_ratio = float(verdict.ratio[q][i])
                if not abs(v_ratio - ratio) <= 1e-12 + 1e-9 * ratio:
                    counts["ratio_mismatches"] += 1
    counts["resolved"] = verdict.resolved
    counts["examples"] = examples
    return counts


def _task(args: tuple) -> dict:
    return crosscheck_chunk(*args)


def crosscheck(fmt: "Format | str", cases: int, seed: int = 0, workers: int = 1,
               chunk: int = 6000) -> dict:
    """``crosscheck_chunk`` over ``cases`` cases (chunks spread over ``workers`` processes)."""
    fmt = get_format(fmt)
    tasks = [(fmt.name, seed, i, min(chunk, cases - start))
             for i, start in enumerate(range(0, cases, chunk))]
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            parts = list(pool.imap(_task, tasks))
    else:
        parts = [_task(t) for t in tasks]
    total: dict = {"examples": []}
    for part in parts:
        for k, v in part.items():
            if k == "examples":
                total["examples"] = (total["examples"] + v)[:5]
            else:
                total[k] = total.get(k, 0) + v
    return total
