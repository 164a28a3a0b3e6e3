"""The legal evaluations of a step of a run on arrays of steps (reference.batch.optim_legal)
are the scalar ones (reference.optim_rounded.sgd_evaluations): the same names in the same
order, every value bit for bit on the steps the arrays guarantee, and those are nearly all."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from reference.batch.legal import VariantArithmetic, evaluate_arrays, same_bits
from reference.batch.optim_legal import ArrayWork, sgd_evaluations_batch
from reference.formats import get_format
from reference.optim import Options, State
from reference.optim_rounded import RoundedWork, run_evaluations, sgd_evaluations
from reference.rounded import ALL_VARIANTS, evaluate, fl_fma, work_arithmetic
from neuronspec.cases.options import DEFAULT_SETS, OptionSet, default_sets, reference_options
from neuronspec.cases.runs import STEP_REGIMES, draw_step

FORMATS = ("float16", "bfloat16", "float32", "float64")


def _cols(steps: list) -> dict:
    """The columns of steps (state, (x, t, lr)) that are all first steps or all later ones."""
    later = steps[0][0].buf_w is not None
    cols = {k: np.array([float(getattr(s, k)) for s, _ in steps]) for k in ("w", "b")}
    for j, k in enumerate(("x", "t", "lr")):
        cols[k] = np.array([step[j] for _, step in steps])
    for k in ("buf_w", "buf_b"):
        cols[k] = np.array([float(getattr(s, k)) for s, _ in steps]) if later else None
    return cols


def _check(fmt, steps: list, options: Options, model: str = "ieee") -> tuple[int, int]:
    """Compares the batch with the scalar evaluations on ``steps`` (first and later steps
    mixed); returns (steps, undecided steps)."""
    undecided_steps = 0
    for later in (False, True):
        chunk = [s for s in steps if (s[0].buf_w is not None) == later]
        if not chunk:
            continue
        out, undecided = sgd_evaluations_batch(fmt, _cols(chunk), options, model)
        assert undecided.dtype == bool and undecided.shape == (len(chunk),)
        undecided_steps += int(undecided.sum())
        wants = [sgd_evaluations(fmt, state, *step, options, model) for state, step in chunk]
        for want in wants:
            assert list(out) == list(want)
        keep = ~undecided
        for name, values in out.items():
            assert set(values) == set(wants[0][name])
            for q, got in values.items():
                if wants[0][name][q] is None:
                    assert got is None and all(w[name][q] is None for w in wants)
                    continue
                assert got.dtype == np.float64 and got.shape == (len(chunk),)
                want = np.array([w[name][q] for w in wants], dtype=np.float64)
                same = same_bits(got, want) | ~keep
                if not same.all():
                    i = int(np.flatnonzero(~same)[0])
                    pytest.fail(f"{fmt.name} {model} {name} {q}: {got[i]!r} for "
                                f"{want[i]!r} at {chunk[i]}")
    return len(steps), undecided_steps


def _steps(fmt, options: dict, count: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [draw_step(fmt, options, rng, STEP_REGIMES[i % len(STEP_REGIMES)])
            for i in range(count)]


@pytest.mark.parametrize("name", [pytest.param(f, marks=pytest.mark.slow)
                                  if f in ("bfloat16", "float64") else f for f in FORMATS])
def test_every_default_option_set_is_the_scalar_evaluations(name):
    fmt = get_format(name)
    total = undecided = 0
    for k, option_set in enumerate(DEFAULT_SETS):
        options = option_set.for_format(fmt)
        steps = _steps(fmt, options, 60, seed=k)
        n, u = _check(fmt, steps, reference_options(options))
        total, undecided = total + n, undecided + u
    assert total >= 500
    assert undecided <= 0.01 * total, f"{undecided} of {total} steps undecided"


@pytest.mark.parametrize("name,convention", [
    (f, c) if (f, c) in (("float16", "keras"), ("float32", "optax-decay-after"))
    else pytest.param(f, c, marks=pytest.mark.slow)
    for f in FORMATS for c in ("keras", "optax", "optax-decay-after")])
def test_the_other_conventions_are_the_scalar_evaluations(name, convention):
    """keras's and optax's own operations (spec/neuron.md 8.6) on arrays, first steps from
    the zero state included: the scalar evaluations bit for bit."""
    fmt = get_format(name)
    total = undecided = 0
    for k, option_set in enumerate(default_sets(convention)[-3:]):
        options = option_set.for_format(fmt)
        n, u = _check(fmt, _steps(fmt, options, 24, seed=40 + k), reference_options(options))
        total, undecided = total + n, undecided + u
    assert undecided <= 0.01 * total, f"{undecided} of {total} steps undecided"


@pytest.mark.parametrize("params, buffer, option_set", [
    # float16 buffer, float32 parameters: 0.9 is not a float16 value (mu_buffer rounding)
    ("float32", "float16", OptionSet(momentum=Fraction("0.9"), dampening=Fraction("0.1"))),
    ("float16", "float32", OptionSet(momentum=Fraction("0.9"), weight_decay=Fraction("1e-4"),
                                     nesterov=True)),
    # binary64 values next to the bottom of float64 in a bfloat16 buffer's products (their
    # TwoProducts underflow), float64 subnormals in float16 parameters' steps
    ("float64", "bfloat16", OptionSet(momentum=Fraction("0.75"), dampening=Fraction("0.125"))),
    ("float16", "float64", OptionSet(momentum=Fraction("0.875"), nesterov=True)),
])
def test_a_declared_buffer_format_is_the_scalar_evaluations(params, buffer, option_set):
    fmt = get_format(params)
    options = option_set.for_format(fmt, buffer)
    run = run_evaluations(fmt, reference_options(options))
    assert run.buffer.name == buffer
    if (params, buffer) == ("float32", "float16"):
        assert run.named_mu and any("mu_buffer=" in e.name for e in run.evaluations)
    n, u = _check(fmt, _steps(fmt, options, 24, seed=7), reference_options(options))
    assert u <= 0.01 * n


@pytest.mark.parametrize("name, model", [("float16", "strict"), ("float32", "strict"),
                                         ("float64", "strict"), ("float32", "ieee+wide")])
def test_other_models(name, model):
    fmt = get_format(name)
    options = DEFAULT_SETS[7].for_format(fmt)  # every option but nesterov
    n, u = _check(fmt, _steps(fmt, options, 18, seed=3), reference_options(options), model)
    assert u <= 0.01 * n


def test_a_one_minus_dampening_of_many_bits():
    """c = 1 - dampening rounded to binary64 has 53 bits: its products are not exact in
    binary64 (a TwoProduct), its fused sums have three terms."""
    for name, tau in (("float32", 2.0**-30 + 2.0**-53), ("bfloat16", 2.0**-40 * (1 + 2.0**-7))):
        fmt = get_format(name)
        assert fmt.contains(tau)
        options = Options(momentum=0.875, dampening=tau, weight_decay=0.0625)
        run = run_evaluations(fmt, options)
        assert any(Fraction(e.c).limit_denominator(2**60).denominator > 2**40
                   for e in run.evaluations)
        mapping = {"momentum": 0.875, "buffer_format": name}
        n, u = _check(fmt, _steps(fmt, mapping, 18, seed=11), options)
        assert u <= 0.01 * n


def test_inputs_outside_the_format_are_left_to_the_scalar_path():
    fmt = get_format("float16")
    options = Options(momentum=0.5)
    cols = {"w": np.array([1.0, 0.1, math.inf]), "b": np.array([0.5, 0.5, 0.5]),
            "x": np.array([2.0, 2.0, 2.0]), "t": np.array([1.0, 1.0, 1.0]),
            "lr": np.array([0.125, 0.125, 0.125]), "buf_w": None, "buf_b": None}
    out, undecided = sgd_evaluations_batch(fmt, cols, options)
    assert undecided.tolist() == [False, True, True]
    want = sgd_evaluations(fmt, State(1.0, 0.5), 2.0, 1.0, 0.125, options)
    assert list(out) == list(want)
    with pytest.raises(ValueError, match="both parameters"):
        sgd_evaluations_batch(fmt, dict(cols, buf_w=np.zeros(3)), options)


def test_a_rounding_to_binary64_keeps_its_53_bits():
    """float32 under +wide, each operation in binary64 then float32, fused forward: w*x + b
    is one ulp of binary64 above a float32 midpoint; rounded to 52 bits it would be the
    midpoint, and the float32 result one ulp too low."""
    w = x = 1 + 2.0**-12
    m = 1 << 29  # w*x + b: 2**-8 + (a midpoint of float32) + 2**-60, as integers below
    wi = next(v for v in range(2**23 + 1, 2**24, 2)
              if 2**23 <= (2**28 + 1) * pow(v, -1, m) % m < 2**24)
    xi = (2**28 + 1) * pow(wi, -1, m) % m
    w, x, b = wi * 2.0**-30, xi * 2.0**-30, 2.0**-8
    fmt, variant = get_format("float32"), ALL_VARIANTS["fused-forward+wide-per-op"]
    cols = {k: np.array([v]) for k, v in zip(("w", "b", "x", "t", "lr"), (w, b, x, 0.0, 0.5))}
    arrays, undecided = evaluate_arrays(fmt, variant, cols)
    want = evaluate(fmt, w, b, x, 0.0, 0.5, variant)
    assert not undecided[0]
    for q, value in want.items():
        assert same_bits(arrays[q], np.array([value]))[0], q


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("work", ["format", "wide-per-op", "wide-kept"])
def test_a_fused_sum_of_three_terms(name, work):
    """fl(a*b + c) with an operand of 53 bits (a*b not exact in binary64), c next to -a*b or
    to a midpoint of the format: the arrays' rounding is IEEE's, every case decided."""
    fmt = get_format(name)
    W = VariantArithmetic(fmt, work, False)
    W.native, W.wide_lr = None, True
    ops, _, _ = work_arithmetic(fmt, work, False)
    rng = np.random.default_rng(len(name) + len(work))
    n = 600
    a = rng.uniform(0.5, 1, n) * 2.0 ** rng.integers(-3, 3, n)
    b, c = (np.array([float(W.operand.round(Fraction(v)))
                      for v in rng.standard_normal(n) * 2.0 ** rng.integers(-10, 10, n)])
            for _ in range(2))
    for i in range(n // 2):
        p = Fraction(a[i]) * Fraction(b[i])
        q = W.first.round(p)
        if i % 2 and q:  # the sum a little off a midpoint of ``first`` (z is the midpoint)
            near = float(Fraction(q) + W.first.ulp(Fraction(q)) / 2 - p)
            c[i] = np.nextafter(near, math.inf if i % 4 == 1 else -math.inf)
        else:  # cancellation
            c[i] = -float(W.operand.round(p))
    value, bad = W.fma(a, b, c)
    want = np.array([float(fl_fma(ops, *map(float, v))) for v in zip(a, b, c)])
    assert not bad.any()
    assert same_bits(np.asarray(value, dtype=np.float64), want).all()


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float32"])
def test_the_array_work_is_the_rounded_work(name):
    """ArrayWork's operations are RoundedWork's, element by element: with a constant of 53
    bits whose products land next to a midpoint of the format (their rounding to binary64 is
    the midpoint), and with constants of the format."""
    fmt = get_format(name)
    rng = np.random.default_rng(len(name))
    n = 400
    b = np.array([float(fmt.round(Fraction(v))) for v in rng.standard_normal(n)])
    d = np.array([float(fmt.round(Fraction(v))) for v in rng.standard_normal(n) / 64])
    for work in ("format", "wide-per-op", "wide-kept"):
        A, scalar = ArrayWork(fmt, work, {}, np.zeros(n, dtype=bool)), RoundedWork(fmt, work)
        first = A.exact.first
        for c in (float(1 - Fraction(fmt.round(Fraction(1, 10))) / 3), 0.875):
            # operands a*b next to a midpoint of ``first``: c*b rounds to it in binary64
            m = [Fraction(first.round(Fraction(c) * Fraction(v))) for v in b]
            m = [q + first.ulp(q) / 2 if q else q for q in m]
            a = np.array([np.nextafter(float(q / Fraction(v)) if v else c, math.inf * (-1) ** i)
                          for i, (q, v) in enumerate(zip(m, b))])
            for op, args, want in (
                    ("mul", (c, b), [scalar.mul(c, float(v)) for v in b]),
                    ("mul", (a, b), [scalar.mul(float(u), float(v)) for u, v in zip(a, b)]),
                    ("fma", (c, b, d), [scalar.fma(c, float(v), float(e)) for v, e in zip(b, d)]),
                    ("add", (b, d), [scalar.add(float(v), float(e)) for v, e in zip(b, d)])):
                got = A.store(getattr(A, op)(*args))
                want = np.array([float(scalar.store(v)) for v in want])
                assert same_bits(got, want).all(), (work, c, op)
        assert not A.undecided.any()
