"""The verdict of ``reference.judge`` for every case at once: ``judgement.judge_values`` on
numpy arrays, or the compiled kernel generated from it (``kernel``); the values it leaves
undecided (status NEAR: too close to the bound for the work type) are decided by
``reference.judge``, so the verdict is the scalar verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..bounds import Model, bound_chain, case_bounds, get_model, overflow_origin
from ..exact import exact_step
from ..formats import Format, get_format
from ..judge import OUT_OF_DOMAIN as DOMAIN
from ..judge import judge
from ..step import INPUTS, NODE_OF, REQUIRED
from . import kernel
from .arith import BINARY64, ArrayOps, Work, work_for
from .chain import arithmetic_for, chain_bounds, check_model, exact_pairs
from .judgement import (BEYOND, NEAR, NONNEGATIVE, NOT_FINITE, NOT_IN_FORMAT, OK,
                        OUT_OF_DOMAIN, ROWS, WRONG_ZERO, judge_values)
from .scaled import ScaledArithmetic, judge_scaled, scaled_bounds, scaled_pairs

__all__ = ["Verdict", "check_batch", "screen_batch", "may_overflow", "overflow_origins"]

#: Cases per call of the numpy paths (float64's long double chain keeps ~100 temporaries).
NUMPY_BLOCK = 1 << 18


@dataclass
class Verdict:
    """Per quantity, arrays over the cases: status, error/bound (nan outside the domain);
    ``resolved_by`` counts the values the scalar path decided (too close to the bound here)."""

    status: dict[str, np.ndarray]
    ratio: dict[str, np.ndarray]
    resolved_by: dict[str, int] = field(default_factory=dict)

    def _is(self, *codes: int) -> dict[str, np.ndarray]:
        return {q: np.isin(s, codes) for q, s in self.status.items()}

    @property
    def violation(self) -> dict[str, np.ndarray]:
        return self._is(BEYOND, NOT_FINITE, NOT_IN_FORMAT, WRONG_ZERO)

    @property
    def out_of_domain(self) -> dict[str, np.ndarray]:
        return self._is(OUT_OF_DOMAIN)

    @property
    def not_finite(self) -> dict[str, np.ndarray]:
        return self._is(NOT_FINITE)

    @property
    def not_in_format(self) -> dict[str, np.ndarray]:
        return self._is(NOT_IN_FORMAT)

    @property
    def resolved(self) -> int:
        return sum(self.resolved_by.values())


def _outputs_in_rows(outputs: Mapping[str, Any]) -> tuple[tuple[str, ...], np.ndarray]:
    names = tuple(q for q in ROWS if q in outputs)
    block = getattr(outputs, "block", None)
    if block is None or tuple(outputs) != names:
        block = np.stack([np.asarray(outputs[q], dtype=np.float64) for q in names])
    return names, block


def check_batch(fmt: "Format | str", cases: Mapping[str, np.ndarray],
                outputs: Mapping[str, np.ndarray], model: "Model | str" = "ieee",
                engine: str = "auto") -> Verdict:
    """The verdict of ``reference.judge`` for every case and returned quantity at once.

    ``cases``: arrays w, b, x, t, lr of format values; ``outputs``: the implementation's arrays
    of the quantities (dL_dy optional), any float dtype.  ``engine``: "numpy", "compiled"
    (numba; float16, bfloat16, float32) or "auto" (compiled where available)."""
    fmt = get_format(fmt)
    model = check_model(get_model(model), fmt)
    work = _work(fmt)
    names, block = _outputs_in_rows(outputs)
    kernels = _kernels(fmt, model, engine, work)
    if kernels is not None and names not in (REQUIRED, ROWS):
        if engine == "compiled":  # the kernel reads the rows of every required quantity
            raise ValueError(f"the compiled engine judges the rows {', '.join(ROWS)} (dL_dy "
                             f"optional), not {', '.join(names)}")
        kernels = None
    if kernels is not None:
        cols = [np.ascontiguousarray(cases[k], dtype=np.float64) for k in INPUTS]
        ratio = np.empty(block.shape)
        status = np.empty(block.shape, dtype=np.int8)
        kernels.verdict(*cols, np.ascontiguousarray(block), ratio, status)
        verdict = Verdict(dict(zip(names, status)), dict(zip(names, ratio)))
    else:  # numpy's arrays, a block of cases at a time (their temporaries: ~700 bytes a case)
        check = (lambda c, b: check_scaled(fmt, model, c, names, b)) if work is None else \
            (lambda c, b: _check_numpy(fmt, model, work, c, names, b))
        n = block.shape[1]
        parts = [check({k: np.asarray(cases[k])[a:a + NUMPY_BLOCK] for k in INPUTS},
                       block[:, a:a + NUMPY_BLOCK]) for a in range(0, max(n, 1), NUMPY_BLOCK)]
        verdict = parts[0] if len(parts) == 1 else Verdict(  # (resolved_by: resolve_alias's)
            {q: np.concatenate([p.status[q] for p in parts]) for q in names},
            {q: np.concatenate([p.ratio[q] for p in parts]) for q in names})
    resolve_alias(fmt, model, cases, names, block, verdict)
    return verdict


def _work(fmt: Format) -> "Work | None":
    """The work type of the numpy path: None for float64 without x87 extended precision (the
    scaled binary64 arithmetic, ``scaled``, then)."""
    try:
        return work_for(fmt)
    except RuntimeError:
        if fmt.p == 53:
            return None
        raise


def check_scaled(fmt: Format, model: Model, cases, names, block) -> Verdict:
    """float64's verdict in the scaled binary64 arithmetic on numpy arrays (no extended
    precision needed); NEAR values are left for ``resolve_alias``."""
    inputs = {k: np.asarray(cases[k], dtype=np.float64) for k in INPUTS}
    with np.errstate(invalid="ignore", over="ignore", divide="ignore", under="ignore"):
        values = scaled_pairs(ArrayOps, inputs)
        bounds = scaled_bounds(ArrayOps, fmt, model, values)
        status, ratio = {}, {}
        for q, row in zip(names, block):
            s, r = judge_scaled(ArrayOps, fmt, np.asarray(row, dtype=np.float64),
                                values[NODE_OF[q]], *bounds[q], nonnegative=q in NONNEGATIVE)
            status[q] = np.broadcast_to(s, row.shape).astype(np.int8)
            ratio[q] = np.broadcast_to(r, row.shape).astype(np.float64)
    return Verdict(status, ratio)


def may_overflow(fmt: "Format | str", cases: Mapping[str, np.ndarray], q: str,
                 model: "Model | str" = "ieee") -> np.ndarray:
    """Per case, whether some admitted evaluation may overflow on the way to ``q`` (the
    bound chain's flag; float64 without x87 extended precision: the scaled arithmetic's)."""
    return overflow_origins(fmt, cases, model)[q] >= 0


def overflow_origins(fmt: "Format | str", cases: Mapping[str, np.ndarray],
                     model: "Model | str" = "ieee") -> dict[str, np.ndarray]:
    """Per quantity and case, the index in NODES of the first node on the way to it that may
    overflow (-1: none): why a value outside the bounded domain is (``bounds.overflow_words``).
    The chain is the verdict's: ``batch_bounds``'s flags, or for float64 without x87 extended
    precision the scaled arithmetic's upper end (``scaled_bounds``'s flags)."""
    fmt = get_format(fmt)
    model = check_model(get_model(model), fmt)
    work = _work(fmt)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore", under="ignore"):
        if work is not None:
            inputs = {k: np.asarray(cases[k], dtype=work.dtype) for k in INPUTS}
            A: Any = arithmetic_for(fmt, work)
            values = exact_pairs(work, inputs)
        else:
            inputs = {k: np.asarray(cases[k], dtype=np.float64) for k in INPUTS}
            A = ScaledArithmetic(fmt, ArrayOps)
            values = scaled_pairs(ArrayOps, inputs)
        chain = bound_chain(A, fmt, model, values, {k: A.zero for k in INPUTS})
    shape = inputs["w"].shape
    return {q: np.broadcast_to(overflow_origin(ArrayOps, chain.flags, name), shape).astype(
        np.int8) for q, name in NODE_OF.items()}


def _check_numpy(fmt: Format, model: Model, work: Work, cases, names, block) -> Verdict:
    dt = work.dtype
    inputs = {k: np.asarray(cases[k], dtype=dt) for k in INPUTS}
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        values = exact_pairs(work, inputs)
        bounds = chain_bounds(arithmetic_for(fmt, work), fmt, model, values)
        status, ratio = {}, {}
        for q, row in zip(names, block):
            bound, ood, low, high = bounds[q]
            s, r = judge_values(ArrayOps, fmt, work, row.astype(dt), values[NODE_OF[q]], bound,
                                ood, low, high, nonnegative=q in NONNEGATIVE)
            shape = row.shape
            status[q] = np.broadcast_to(s, shape).astype(np.int8)
            ratio[q] = np.broadcast_to(r, shape).astype(np.float64)
    return Verdict(status, ratio)


def resolve_alias(fmt: Format, model: Model, cases, names, block, verdict: Verdict) -> None:
    """The values too close to their bound to decide in the work type, decided by the judge."""
    cache: dict = {}
    for q, row in zip(names, block):
        near = np.flatnonzero(verdict.status[q] == NEAR)
        verdict.resolved_by[q] = len(near)
        for i in near.tolist():
            case = tuple(float(np.asarray(cases[k])[i]) for k in INPUTS)
            if case not in cache:
                cache[case] = (case_bounds(fmt, dict(zip(INPUTS, case)), model),
                               exact_step(*case).as_fractions())
            bounds, exact = cache[case]
            j = judge(fmt, q, float(row[i]), exact[q], bounds[q])
            verdict.status[q][i] = BEYOND if j.violation else \
                OUT_OF_DOMAIN if j.verdict == DOMAIN else OK
            verdict.ratio[q][i] = j.ratio


def _kernels(fmt: Format, model: Model, engine: str, work: "Work | None"):
    """The compiled kernels for (fmt, model), or None (numpy engine, float64, or no numba)."""
    if engine not in ("auto", "compiled", "numpy"):
        raise ValueError(f"unknown engine {engine!r}; choose auto, compiled or numpy")
    if engine == "numpy":
        return None
    kernels = kernel.kernels(fmt, model) if work is BINARY64 else None
    if kernels is None and engine == "compiled":
        raise RuntimeError("the compiled engine needs numba (pip install numba) and a format "
                           "narrower than float64")
    return kernels


def screen_batch(fmt: "Format | str", cases: Mapping[str, np.ndarray], block: np.ndarray,
                 model: "Model | str" = "ieee") -> "tuple[np.ndarray, np.ndarray] | None":
    """Compiled screening of a block of outputs (rows as :data:`ROWS`): per value an upper
    estimate of error/bound (-1 outside the domain) and per case a bit mask of the rows that
    need the full judgement; None where no compiled kernel is available."""
    fmt = get_format(fmt)
    model = check_model(get_model(model), fmt)
    kernels = _kernels(fmt, model, "auto", _work(fmt))
    if kernels is None:
        return None
    if block.shape[0] not in (len(REQUIRED), len(ROWS)):
        raise ValueError(f"screen_batch reads the rows {', '.join(ROWS)} (dL_dy optional), not "
                         f"{block.shape[0]} rows")
    cols = [np.ascontiguousarray(cases[k], dtype=np.float64) for k in INPUTS]
    estimate = np.empty(block.shape)
    attention = np.empty(block.shape[1], dtype=np.uint8)
    kernels.screen(*cols, np.ascontiguousarray(block), estimate, attention)
    return estimate, attention
