"""The exact values and bounds of one step of a run for arrays of steps (spec/tolerances.md
2.8): ``optim_bounds.run_chain`` -- the plain step's chain continued over the optimiser's nodes,
written once -- run in the batch pair arithmetic (``chain.PairArithmetic``), with the
optimiser's exact values from ``optim.parameter_nodes`` in :func:`pair_exact` (pairs with a
rigorous bound on what they leave out, as ``chain.exact_pairs`` gives the plain step's).

Every format is covered: binary64 pairs for float16, bfloat16 and float32, x87 extended pairs
for float64 (``arith.work_for``: where numpy has no x87 long double, float64's steps stay on
the scalar path).  ``tests/test_optim_chain.py`` holds every bound within the batch interval
of the scalar one (``optim_bounds.sgd_bounds``), every overflow flag equal, and every pair
within its delta of the exact step (``optim.exact_sgd_step``).
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from typing import Any, Mapping, NamedTuple

import numpy as np

from ..formats import Format, get_format
from ..model import Model, get_model
from ..optim import Options, State, _Exact
from ..optim_bounds import (buffer_format, check_run_model, constant_errors, hyper_errors,
                            lr_error, run_chain)
from ..step import INPUTS
from .arith import Pair, Work, pair_add, pair_mul, two_prod, two_sum, work_for
from .chain import arithmetic_for, check_model, exact_pairs

__all__ = ["RunBound", "pair_exact", "batch_sgd_bounds", "SPREAD"]

#: How far below the batch bound the exact one may lie, relative: the binary64 chain's terms
#: are each within a few 2^-53 of the exact ones and the result is grown by 2^-40 (tolerances.md
#: 2.7); values closer to the bound than this are decided by the scalar path.
SPREAD = 2.0 ** -36


class RunBound(NamedTuple):
    """One quantity of a step of a run over the steps: its exact value (a pair), its bound
    (rounded up), whether it is outside the bounded domain, [low, high] (where the scalar
    bound, exact, lies: at most :data:`SPREAD` below this one) and the format its values are
    judged in."""

    pair: Pair
    bound: Any
    out_of_domain: Any
    low: Any
    high: Any
    fmt: Format


def _is_pair(v: Any) -> bool:
    return isinstance(v, Pair)


def pair_exact(work: Work) -> _Exact:
    """The optimiser's exact arithmetic on pairs (``optim.parameter_nodes`` runs in it): format
    values stay plain arrays or floats, an inexact result becomes a :class:`Pair` whose delta
    bounds what it leaves out (each delta grown for its own roundings)."""
    up = 1 + 8 * work.u

    def number(v: Any, what: str = "") -> Any:
        if isinstance(v, np.ndarray):
            return v.astype(work.dtype, copy=False)
        if isinstance(v, Fraction) and Fraction(float(v)) != v:
            raise ValueError(f"{what} = {v} is not a binary value")
        return work.dtype(v) if work.dtype is not np.float64 else float(v)

    def mul(a: Any, b: Any) -> Any:
        if not _is_pair(a) and not _is_pair(b):
            if work.exact_products and isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
                return a * b  # values of a format of at most 26 bits: exact in binary64
            hi, lo = two_prod(a, b, work.splitter)
            return _plain(hi, lo)
        if not _is_pair(a):
            a, b = b, a
        if not _is_pair(b):  # (hi + lo) * b
            hi, lo, e = pair_mul(a.hi, a.lo, b, work)
            return Pair(hi, lo, (abs(b) * a.delta + e) * up)
        # (ah + al)(bh + bl) = ah*(bh + bl) + al*bh + al*bl
        hi, lo, e1 = pair_mul(b.hi, b.lo, a.hi, work)
        q = a.lo * b.hi  # off by at most u|q|
        hi, lo, e2 = pair_add(hi, lo, q)
        b_mag = (abs(b.hi) + abs(b.lo)) * (1 + 4 * work.u) + b.delta
        a_mag = (abs(a.hi) + abs(a.lo)) * (1 + 4 * work.u)
        delta = a_mag * b.delta + b_mag * a.delta + e1 + e2 + 2 * work.u * abs(q) \
            + abs(a.lo * b.lo) * (1 + 4 * work.u)
        return Pair(hi, lo, delta * up)

    def add(a: Any, b: Any) -> Any:
        if not _is_pair(a) and not _is_pair(b):
            hi, lo = two_sum(a, b)
            return _plain(hi, lo)
        if not _is_pair(a):
            a, b = b, a
        if not _is_pair(b):
            hi, lo, e = pair_add(a.hi, a.lo, b)
            return Pair(hi, lo, (a.delta + e) * up)
        hi, lo, e1 = pair_add(a.hi, a.lo, b.hi)
        hi, lo, e2 = pair_add(hi, lo, b.lo)
        return Pair(hi, lo, (a.delta + b.delta + e1 + e2) * up)

    def neg(a: Any) -> Any:
        return Pair(-a.hi, -a.lo, a.delta) if _is_pair(a) else -a

    return _Exact(number, {"mul": mul, "add": add, "sub": lambda a, b: add(a, neg(b)),
                           "copy": lambda a: a}, neg)


def _plain(hi: Any, lo: Any) -> Any:
    """An exact TwoSum/TwoProduct result: the value itself where nothing is left over."""
    if np.ndim(hi) == 0 and lo == 0:  # (a constant: a float, or an x87 scalar)
        return hi
    return Pair(hi, lo, 0.0)


def _up(d: Any, A: Any) -> Any:
    """A Dyadic's exact value rounded up to the chain's work type (a bound term enters it)."""
    f = d.as_fraction()
    dt = getattr(A, "dt", np.float64)
    x = dt(f.numerator) / dt(f.denominator) if f else dt(0)
    while _fraction(x) < f:  # (long double conversions of Fractions are not exact)
        x = np.nextafter(x, dt(np.inf))
    return x if dt is not np.float64 else float(x)


def _fraction(x: Any) -> Fraction:
    """A binary64 or x87 extended value, exactly."""
    m, e = np.frexp(x)
    return Fraction(int(np.ldexp(m, 64))) * Fraction(2) ** (int(e) - 64)


def batch_sgd_bounds(fmt: "Format | str", cols: Mapping[str, Any], options: Options,
                     model: "Model | str" = "ieee") -> dict[str, "RunBound | None"]:
    """Per quantity of ``optim_bounds.RUN_QUANTITIES``, over arrays of steps: ``cols`` holds
    w, b, x, t, lr (values of the format) and buf_w, buf_b (values of the buffer format, or
    None: every step a first step without buffer).  None for a buffer the options do not
    keep."""
    fmt = get_format(fmt)
    model = check_run_model(get_model(model), fmt, options)
    # (the plain step's lr is not a quantity of a run: lr-binary64 enters lq alone, below)
    check_model(replace(model, lr_binary64=False), fmt)
    work = work_for(fmt)  # (float64: x87 extended pairs, else a RuntimeError naming why)
    dt = work.dtype
    inputs = {k: np.asarray(cols[k], dtype=dt) for k in INPUTS}
    bufs = [None if cols.get(k) is None else np.asarray(cols[k], dtype=dt)
            for k in ("buf_w", "buf_b")]
    if bufs[0] is None and bufs[1] is None and options.rules.zero_state and options.buffered:
        bufs = [np.zeros_like(inputs["w"]) for _ in bufs]  # (keras, optax: the zero state)
    state = State(inputs["w"], inputs["b"], *bufs)
    A = arithmetic_for(fmt, work)
    e_c, e_mu = constant_errors(fmt, options, model)
    shape = inputs["w"].shape
    with np.errstate(invalid="ignore", over="ignore", divide="ignore", under="ignore"):
        values = exact_pairs(work, inputs)
        errors = {k: _up(e, A) for k, e in hyper_errors(fmt, options, model).items()}
        if model.lr_binary64:
            errors["lr"], overflow = lr_error(A, fmt, model, values["lr"])
            if np.any(overflow):
                raise ValueError(f"an lr overflows {fmt.name}; it cannot be used there")
        chain, _, names = run_chain(A, fmt, model, values, state, options, _up(e_c, A),
                                    _up(e_mu, A), pair_exact(work), errors)
        out: dict[str, "RunBound | None"] = {}
        B = buffer_format(fmt, options)
        for q, name in names.items():
            if name is None:
                out[q] = None
                continue
            v = chain.values[name]
            pair = v if _is_pair(v) else Pair(v, 0.0, 0.0)
            pair = Pair(*(np.broadcast_to(np.asarray(a, dtype=dt), shape)
                          for a in (pair.hi, pair.lo, pair.delta)))
            bound = A.finish(chain.errors[name], name)
            low, high = A.interval(bound, name) if dt is not np.float64 else (bound, bound)
            low, high = np.minimum(low, bound * (1 - SPREAD)), np.maximum(high, bound)
            full = [np.broadcast_to(np.asarray(a), shape) for a in
                    (bound, chain.flags[name], low, high)]
            out[q] = RunBound(pair, full[0], full[1].astype(bool), full[2], full[3],
                              B if q.startswith("buf_") else fmt)
    return out


