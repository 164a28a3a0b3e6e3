"""``neuronspec crosscheck``: the batch verdict against the scalar one (mpmath exact values,
``reference.bounds.case_bounds``, ``reference.judge``), case by case, on outputs placed around
the bound.

For each case (the campaign regimes, whose draws include signed zeros, subnormals, the smallest
normal, the largest finite value and 1), each quantity gets one of: the correctly rounded exact
value, the exact value moved by a random fraction 0.5 .. 1.5 of its bound (then rounded to the
format), a neighbour of the latter, infinity, or (narrow formats) a binary64 value that is not
in the format.  A disagreement is a case and quantity where the two paths differ on "in the
bounded domain" or on "violation".
"""

from __future__ import annotations

import math

import numpy as np

from reference.batch import (BINARY64, ArrayOps, batch_bounds, check_batch, exact_pairs,
                             round_array, work_for)
from reference.batch.scaled import round64, scaled_bounds, scaled_pairs
from reference.bounds import IEEE, case_bounds
from reference.exact import exact_step
from reference.formats import Format, get_format
from reference.judge import OUT_OF_DOMAIN, judge
from reference.step import INPUTS, NODE_OF, REQUIRED

from ..cases.chunks import chunk_case_list
from .campaign import completed, run_chunks

__all__ = ["crosscheck", "crosscheck_chunk", "outputs_around_bounds", "KEEP_EXAMPLES"]

#: Disagreements kept as examples.
KEEP_EXAMPLES = 5


def _centres(fmt: Format, cases: dict) -> dict:
    """Per quantity: the correctly rounded exact value, a number near the exact value (in the
    work type) and the bound (0 where an admitted evaluation may overflow); float64 without x87
    extended precision through the scaled arithmetic (``reference.batch.scaled``)."""
    try:
        work = work_for(fmt)
    except RuntimeError:
        return _scaled_centres(fmt, cases)
    args = [np.asarray(cases[k], dtype=work.dtype) for k in INPUTS]
    nodes = exact_pairs(work, dict(zip(INPUTS, args)))
    bounds = batch_bounds(fmt, *args, nodes=nodes)
    out = {}
    for q in REQUIRED:
        node = nodes[NODE_OF[q]]
        out[q] = (round_array(fmt, node.hi, node.lo, work).astype(np.float64), node.hi,
                  np.where(bounds[q].out_of_domain, 0, bounds[q].bound))
    return out


def _scaled_centres(fmt: Format, cases: dict) -> dict:
    args = {k: np.asarray(cases[k], dtype=np.float64) for k in INPUTS}
    values = scaled_pairs(ArrayOps, args)
    bounds = scaled_bounds(ArrayOps, fmt, IEEE, values)
    out = {}
    for q in REQUIRED:
        pair = values[NODE_OF[q]]
        high, ood = bounds[q][3], bounds[q][1]
        out[q] = (round64(ArrayOps, pair), ArrayOps.ldexp(pair.hi, pair.k),
                  np.where(ood, 0.0, ArrayOps.ldexp(high.m, high.k)))
    return out


def outputs_around_bounds(fmt: Format, cases: dict, rng: np.random.Generator) -> dict:
    """Outputs for every quantity, spread over pass, fail and the boundary between them."""
    n = len(cases["w"])
    out = {}
    for q, (rounded, near, bound) in _centres(fmt, cases).items():
        dt = near.dtype.type
        kind = rng.integers(0, 20, n)
        sign = np.where(rng.random(n) < 0.5, -1, 1).astype(dt)
        f = rng.uniform(0.5, 1.5, n).astype(dt)
        moved = round_array(fmt, near + sign * f * bound.astype(dt), None,
                            work_for(fmt) if dt is not np.float64 else BINARY64)
        value = np.where(kind < 4, rounded, moved.astype(np.float64))
        step = np.where(kind % 2 == 0, np.inf, -np.inf)
        if fmt.name in ("float16", "float32"):
            ft = np.float16 if fmt.name == "float16" else np.float32
            neighbour = np.nextafter(value.astype(ft), step.astype(ft)).astype(np.float64)
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


def crosscheck_chunk(fmt: "Format | str", seed: int, index: int, n: int) -> dict:
    """Both verdicts on ``n`` cases (chunk ``index`` of the run with ``seed``); counts and the
    first disagreements."""
    fmt = get_format(fmt)
    rng = np.random.default_rng([seed, index, 7])
    with np.errstate(all="ignore"):
        return _chunk(fmt, rng, n)


def _chunk(fmt: Format, rng: np.random.Generator, n: int) -> dict:
    cases = [case for _, case in chunk_case_list(fmt, rng, n)]
    cols = {k: np.array([c[i] for c in cases]) for i, k in enumerate(INPUTS)}
    outputs = outputs_around_bounds(fmt, cols, rng)
    verdict = check_batch(fmt, cols, outputs)
    counts = {"cases": len(cases), "checked": 0, "violations": 0, "out_of_domain": 0,
              "disagreements": 0, "ratio_mismatches": 0}
    examples = []
    violation, out_of_domain = verdict.violation, verdict.out_of_domain
    for i, case in enumerate(cases):
        bounds = case_bounds(fmt, case, IEEE)
        exact = exact_step(*case).as_fractions()
        for q in REQUIRED:
            j = judge(fmt, q, float(outputs[q][i]), exact[q], bounds[q])
            ood, bad = j.verdict == OUT_OF_DOMAIN, j.violation
            v_ood, v_bad = bool(out_of_domain[q][i]), bool(violation[q][i])
            counts["out_of_domain"] += ood
            counts["checked"] += not ood
            counts["violations"] += bad
            if ood != v_ood or bad != v_bad:
                counts["disagreements"] += 1
                if len(examples) < KEEP_EXAMPLES:
                    examples.append({"case": list(case), "quantity": q, "output": j.observed,
                                     "scalar": [ood, bad, j.ratio], "batch": [v_ood, v_bad]})
            elif not ood and math.isfinite(j.ratio):
                v_ratio = float(verdict.ratio[q][i])
                if not abs(v_ratio - j.ratio) <= 1e-12 + 1e-9 * j.ratio:
                    counts["ratio_mismatches"] += 1
    counts["resolved"] = verdict.resolved
    counts["examples"] = examples
    return counts


def _task(args: tuple) -> dict:
    return crosscheck_chunk(*args)


def crosscheck(fmt: "Format | str", cases: int, seed: int = 0, workers: int = 1,
               chunk: int = 6000, scheduler: "str | None" = None, started=None) -> dict:
    """``crosscheck_chunk`` over ``cases`` cases (chunks spread over ``workers`` processes, or
    over the Dask cluster at ``scheduler``)."""
    fmt = get_format(fmt)
    tasks = ((fmt.name, seed, i, min(chunk, cases - start))  # (streamed)
             for i, start in enumerate(range(0, cases, chunk)))
    total: dict = {"examples": []}
    for part in completed(run_chunks(_task, tasks, workers=workers, in_process=workers <= 1,
                                     scheduler=scheduler, started=started)):
        for k, v in part.items():
            if k == "examples":
                total["examples"] = (total["examples"] + v)[:KEEP_EXAMPLES]
            else:
                total[k] = total.get(k, 0) + v
    return total
