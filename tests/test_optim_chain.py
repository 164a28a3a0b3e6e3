"""The batch bounds of steps of runs (reference.batch.optim_chain) against the scalar ones
(reference.optim_bounds.sgd_bounds, exact) and the exact step (reference.optim)."""

from __future__ import annotations

import zlib
from fractions import Fraction

import numpy as np
import pytest

from neuronspec.cases.options import DEFAULT_SETS, default_sets, reference_options
from neuronspec.cases.runs import STEP_REGIMES, draw_step
from reference.batch.optim_chain import batch_sgd_bounds
from reference.bounds import OutOfDomain
from reference.formats import get_format
from reference.optim import exact_sgd_step
from reference.optim_bounds import sgd_bounds


def _steps(fmt, options: dict, later: bool, n: int, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        state, step = draw_step(fmt, options, rng, STEP_REGIMES[len(out) % len(STEP_REGIMES)])
        if (state.buf_w is not None) == later:
            out.append((state, step))
    return out


def _columns(steps) -> dict:
    cols = {k: np.array([getattr(s, k) for s, _ in steps]) for k in ("w", "b")}
    for i, k in enumerate(("x", "t", "lr")):
        cols[k] = np.array([step[i] for _, step in steps])
    for k in ("buf_w", "buf_b"):
        first = getattr(steps[0][0], k)
        cols[k] = None if first is None else np.array([getattr(s, k) for s, _ in steps])
    return cols


CASES = [(fmt, spec, None) if spec in (DEFAULT_SETS[0], DEFAULT_SETS[-1]) or fmt == "float32"
         else pytest.param(fmt, spec, None, marks=pytest.mark.slow)
         for fmt in ("float16", "bfloat16", "float32", "float64") for spec in DEFAULT_SETS] + [("float32", DEFAULT_SETS[-1], "float16"),
                                      ("float16", DEFAULT_SETS[-1], "float32"),
                                      ("float32", DEFAULT_SETS[-1], "bfloat16"),
                                      ("float64", DEFAULT_SETS[-1], "float32")]


#: The other conventions (spec/neuron.md 8.6): their last default set (every option of the
#: convention), the zero state on first steps; float16 and float32 by default.
CASES += [(fmt, default_sets(c)[-1], None) if fmt in ("float16", "float32")
          else pytest.param(fmt, default_sets(c)[-1], None, marks=pytest.mark.slow)
          for c in ("keras", "optax", "optax-decay-after")
          for fmt in ("float16", "bfloat16", "float32", "float64")]


def _id(case) -> str:
    f, s, b = case.values if hasattr(case, "values") else case
    return f"{f}-{s.spec() or 'plain'}-{b or f}"


@pytest.mark.parametrize("fmt,option_set,buffer", CASES, ids=[_id(c) for c in CASES])
def test_batch_bounds_are_the_scalar_ones(fmt, option_set, buffer):
    F = get_format(fmt)
    mapping = option_set.for_format(fmt, buffer)
    options = reference_options(mapping)
    checked = 0
    for later in ((False, True) if options.buffered else (False,)):
        steps = _steps(F, mapping, later, 24, zlib.crc32(option_set.spec().encode()) + later)
        batch = batch_sgd_bounds(F, _columns(steps), options)
        for i, (state, (x, t, lr)) in enumerate(steps):
            scalar = sgd_bounds(F, state, x, t, lr, options)
            exact = dict(exact_sgd_step(state, x, t, lr, options))
            exact["dL_dy"] = exact["dL_db"]
            for q, bound in scalar.items():
                got = batch[q]
                if bound is None:
                    assert got is None, q
                    continue
                assert bool(got.out_of_domain[i]) == isinstance(bound, OutOfDomain), (q, i)
                pair = got.pair
                hi, lo, delta = (_exact(a[i]) for a in (pair.hi, pair.lo, pair.delta))
                assert abs(hi + lo - exact[q]) <= delta, (q, i)
                if isinstance(bound, OutOfDomain):
                    continue
                assert _exact(got.low[i]) <= bound <= _exact(got.high[i]), \
                    (q, i, float(bound), float(got.low[i]), float(got.high[i]))
                assert bound <= _exact(got.bound[i]), (q, i)
                checked += 1
    assert checked > 150


def _exact(v) -> Fraction:
    """A float64 or x87 long double value, exactly."""
    if isinstance(v, np.longdouble) and not isinstance(v, np.float64):
        m, e = np.frexp(v)
        return Fraction(int(np.ldexp(m, 64))) * Fraction(2) ** (int(e) - 64)
    return Fraction(float(v))
