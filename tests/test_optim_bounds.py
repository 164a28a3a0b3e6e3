"""The bounds, legal evaluations and judgement of a step of a run of SGD with options
(reference.optim_bounds, optim_rounded, optim_judge; spec/tolerances.md 2.8, neuron.md 8.3-8.5):
sound on every legal evaluation, the plain step's chain when every option is off, tight enough
to reject each named bug, and judged from the reported state."""

from __future__ import annotations

import math
import random
import zlib
from fractions import Fraction

import pytest

from reference.bounds import OutOfDomain, case_bounds
from reference.dyadic import dyadic_nodes
from reference.exact import exact_nodes
from reference.formats import get_format, to_fraction
from reference.optim import DYADIC, parameter_nodes, Options, State, exact_sgd_step
from reference.optim_bounds import RUN_QUANTITIES, rounded_constants, sgd_bounds
from reference.optim_judge import (BUFFER_MISSING, NO_BUFFER, NOT_FINITE_STATE, judge_run,
                                   judge_sgd_step)
from reference.optim_rounded import sgd_evaluations, sgd_legal
from neuronspec.runs.run_soundness import judge_legal_values

FORMATS = ("float16", "bfloat16", "float32", "float64")


def _value(rng: random.Random, fmt, lo: int = -6, hi: int = 6) -> float:
    v = rng.uniform(0.5, 1.0) * 2.0 ** rng.randint(lo, hi) * rng.choice((-1, 1))
    return fmt.round(Fraction(v))


def _options(rng: random.Random, fmt) -> Options:
    mu = rng.choice((0.0, abs(_value(rng, fmt, -3, 0)), 1.0))
    nesterov = mu > 0 and rng.random() < 0.4
    return Options(momentum=mu, nesterov=nesterov,
                   dampening=0.0 if nesterov else rng.choice((0.0, abs(_value(rng, fmt, -4, -1)))),
                   weight_decay=rng.choice((0.0, abs(_value(rng, fmt, -6, -1)))),
                   maximize=rng.random() < 0.3)


def _case(rng: random.Random, fmt, options: Options, regime: str):
    """(state, x, t, lr) of one step: moderate values, y close to t (cancellation), or
    values near the bottom of the format (subnormal products and lr)."""
    first = not options.buffered or rng.random() < 0.3
    if regime == "tiny":
        lo, hi = fmt.emin - 2, fmt.emin + 4
        w, b, buf_w, buf_b, x, t = (_value(rng, fmt, lo, hi) for _ in range(6))
        x = _value(rng, fmt, -2, 2)
        lr = abs(_value(rng, fmt, -4, 0))
    else:
        w, b, buf_w, buf_b, x, t = (_value(rng, fmt) for _ in range(6))
        lr = abs(_value(rng, fmt, -10, -1))
        if regime == "cancel":
            t = fmt.round(to_fraction(fmt.round(Fraction(w) * Fraction(x))) + Fraction(b))
            t = float(t) if rng.random() < 0.5 else math.nextafter(float(t), math.inf)
            t = fmt.round(Fraction(t))
    state = State(w, b, None if first else buf_w, None if first else buf_b)
    return state, x, t, lr


def test_dyadic_nodes_equal_mpmath():
    rng = random.Random(3)
    fmt = get_format("float32")
    for _ in range(60):
        options = _options(rng, fmt)
        state, x, t, lr = _case(rng, fmt, options, "moderate")
        mp = exact_nodes(state.w, state.b, x, t, lr)
        dy = dyadic_nodes(state.w, state.b, x, t, lr)
        for theta in ("w", "b"):
            a = parameter_nodes(theta, mp, state, mp["lr"], options)
            d = parameter_nodes(theta, dy, state, dy["lr"], options, DYADIC)
            assert a.keys() == d.keys()
            for k in a:
                assert to_fraction(a[k]) == d[k].as_fraction(), (theta, k)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_option_off_is_the_plain_chain(fmt):
    rng = random.Random(zlib.crc32(fmt.encode()))  # (hash() of a str changes from run to run)
    f = get_format(fmt)
    for _ in range(40):
        state, x, t, lr = _case(rng, f, Options(), rng.choice(("moderate", "cancel", "tiny")))
        run = sgd_bounds(f, state, x, t, lr, Options())
        plain = case_bounds(f, (state.w, state.b, x, t, lr), exact_arithmetic=True)
        assert run["buf_w"] is None and run["buf_b"] is None
        for q in plain:
            assert run[q] == plain[q], q


def _judge_sample(fmt, n: int, seed: int) -> tuple[int, dict[str, float]]:
    """Every distinct value of every legal evaluation of ``n`` sampled steps judged against its
    bound (random option combinations, first and later steps, moderate, cancelling and tiny
    values; ``run_soundness.judge_legal_values``, as ``neuronspec soundness --runs`` judges):
    asserts that none is a violation; returns how many values were judged and the worst
    error/bound."""
    rng = random.Random(seed)
    f = get_format(fmt)
    worst: dict[str, float] = {}
    judged = 0
    for i in range(n):
        options = _options(rng, f)
        state, x, t, lr = _case(rng, f, options, ("moderate", "cancel", "tiny")[i % 3])
        values, violations, _, first = judge_legal_values(f, state, x, t, lr, options, worst)
        assert violations == 0, first
        judged += values
    return judged, worst


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_legal_evaluation_is_within_its_bound(fmt):
    """Soundness on a sample, and tightness: the bound is attained to within a small factor."""
    judged, worst = _judge_sample(fmt, 60, 7 + len(fmt))
    assert judged > 300  # (distinct values)
    for q in ("w_new", "b_new", "buf_w", "buf_b"):
        assert worst[q] > 0.25, (q, worst[q])  # not a bound orders of magnitude too wide


def test_torch_rounding_of_one_minus_dampening_is_an_evaluation():
    f = get_format("float16")
    tau = f.round(Fraction(1, 10))
    c = 1 - Fraction(tau)
    choices = rounded_constants(f, c)
    torch_value = Fraction(f.round(Fraction(get_format("float32").round(Fraction(float(c))))))
    assert torch_value in choices and c in choices and len(choices) == 2  # c: binary64 only


def _step_outputs(fmt, state, x, t, lr, options, name=None):
    """An evaluation's values (by default the first: no fusion, torch's constants last)."""
    found = sgd_evaluations(fmt, state, x, t, lr, options)
    return found[name] if name is not None else next(iter(found.values()))


def test_named_bugs_fail_at_their_quantity():
    f = get_format("float32")
    x, t, lr = 1.5, -0.75, 0.125
    state = State(0.5, 0.25)
    # dampening on the first step: a zero buffer updated by the general rule
    options = Options(momentum=0.5, dampening=0.25)
    bad = _step_outputs(f, State(0.5, 0.25, 0.0, 0.0), x, t, lr, options,
                        name="canonical+c=0x1.8000000000000p-1")
    verdict = judge_sgd_step(f, state, x, t, lr, options, bad)
    assert verdict["buf_w"].violation and verdict["buf_b"].violation
    assert verdict["w_new"].violation and verdict["y"].ok
    # maximize ignored
    options = Options(maximize=True)
    bad = _step_outputs(f, state, x, t, lr, Options())
    verdict = judge_sgd_step(f, state, x, t, lr, options, bad)
    assert verdict["w_new"].violation and verdict["b_new"].violation and verdict["dL_dw"].ok
    # weight decay after momentum: the buffers show it
    options = Options(momentum=0.5, weight_decay=0.25)
    right = _step_outputs(f, state, x, t, lr, options)
    bad = dict(right, buf_w=_step_outputs(f, state, x, t, lr, Options(momentum=0.5))["buf_w"])
    assert judge_sgd_step(f, state, x, t, lr, options, bad)["buf_w"].violation
    assert all(j.ok for j in judge_sgd_step(f, state, x, t, lr, options, right).values())
    # a buffer where there is none, and none where there is one
    out = dict(_step_outputs(f, state, x, t, lr, Options()), buf_w=0.0)
    assert judge_sgd_step(f, state, x, t, lr, Options(), out)["buf_w"].why == NO_BUFFER
    out = dict(_step_outputs(f, state, x, t, lr, Options(momentum=0.5)), buf_b=None)
    assert judge_sgd_step(f, state, x, t, lr, Options(momentum=0.5), out)["buf_b"].why == \
        BUFFER_MISSING


def test_a_run_is_judged_from_its_reported_state():
    """A wrong buffer fails at its step; the next step is judged from the wrong state (and
    passes there), so a bound never compounds and a fault shows where it happens."""
    f = get_format("float64")
    options = Options(momentum=0.75, dampening=0.125, weight_decay=0.0625)
    data = [(1.5, -0.5, 0.125), (-0.75, 2.0, 0.0625), (0.25, 1.0, 0.25)]
    state, steps = State(0.5, -0.25), []
    for k, (x, t, lr) in enumerate(data):
        out = dict(_step_outputs(f, state, x, t, lr, options))
        if k == 1:
            out["buf_w"] = math.nextafter(math.nextafter(out["buf_w"], math.inf), math.inf) * 2
        steps.append(out)
        state = State(out["w_new"], out["b_new"], out["buf_w"], out["buf_b"])
    verdict = judge_run(f, 0.5, -0.25, data, options, steps, exact_level=True)
    assert verdict.first_failure()[0] == 2 and verdict.first_failure()[1].quantity == "buf_w"
    assert all(j.ok for j in verdict.steps[2].values())
    assert all(verdict.explained[2].values())  # step 3: legal from the wrong state
    assert len(verdict.distance) == 3 and verdict.distance[0]["w_new"] < Fraction(1, 2**50)


def test_judging_stops_at_a_state_that_is_not_finite():
    f = get_format("float16")
    options = Options(momentum=0.5)
    data = [(200.0, -60000.0, 1.0), (1.0, 1.0, 1.0)]
    out = _step_outputs(f, State(100.0, 100.0), *data[0], options)
    bounds = sgd_bounds(f, State(100.0, 100.0), *data[0], options)
    assert isinstance(bounds["w_new"], OutOfDomain) and not math.isfinite(out["w_new"])
    verdict = judge_run(f, 100.0, 100.0, data, options, [out, out])
    assert len(verdict.steps) == 1 and NOT_FINITE_STATE in verdict.stopped
    assert not verdict.steps[0]["w_new"].violation  # an admitted overflow


def test_quantities_and_exact_values():
    f = get_format("bfloat16")
    options = Options(momentum=0.5, nesterov=True)
    state, x, t, lr = State(1.0, 0.5), 2.0, 0.25, 0.125
    assert set(sgd_bounds(f, state, x, t, lr, options)) == set(RUN_QUANTITIES)
    exact = exact_sgd_step(state, x, t, lr, options)
    legal = sgd_legal(f, state, x, t, lr, options)
    for q in ("w_new", "b_new", "buf_w", "buf_b"):  # an exact case: every evaluation exact
        assert legal.of(q) == [float(exact[q])], q


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_soundness_campaign(fmt):
    """The soundness sample at scale (``NEURONSPEC_RUN_SOUNDNESS`` cases per format, default
    2,000; every option combination the sampler draws, each case's every legal evaluation):
    zero violations; prints the worst error/bound per quantity."""
    import os

    n = int(os.environ.get("NEURONSPEC_RUN_SOUNDNESS", "2000"))
    judged, worst = _judge_sample(fmt, n, 2026 + len(fmt))
    print(f"\n{fmt}: {n} cases, {judged} values of legal evaluations judged, 0 violations; "
          + ", ".join(f"{q} {r:.4f}" for q, r in sorted(worst.items())))


def test_the_distance_stays_within_its_propagated_bound():
    """neuron.md 8.5: without momentum, minimising, with lr*(x^2 + 1 + wd) <= 2, a run whose
    every step passed is within the sum of its steps' bounds of the exact trajectory; the
    bound is a meaningful figure (the distance reaches a good part of it), and it is not
    given where 8.5 gives none."""
    f = get_format("float32")
    rng = random.Random(17)
    worst, bounded = 0.0, 0
    for options in (Options(), Options(weight_decay=0.0625), Options(momentum=0.5)):
        for _ in range(12):
            w0, b0 = _value(rng, f, -2, 2), _value(rng, f, -2, 2)
            data = [(_value(rng, f, -1, 1), _value(rng, f, -2, 2), abs(_value(rng, f, -4, -2)))
                    for _ in range(8)]
            state, steps = State(w0, b0), []
            for x, t, lr in data:  # the canonical evaluation, step by step
                out = _step_outputs(f, state, x, t, lr, options)
                steps.append(out)
                state = State(out["w_new"], out["b_new"], out["buf_w"], out["buf_b"])
            verdict = judge_run(f, w0, b0, data, options, steps)
            assert verdict.ok
            for distance, bound in zip(verdict.distance, verdict.distance_bound):
                if options.buffered:
                    assert bound is None
                elif bound is not None:
                    bounded += 1
                    assert max(distance.values()) <= bound
                    worst = max(worst, float(max(distance.values()) / bound))
    assert bounded > 100 and worst > 0.1, (bounded, worst)


@pytest.mark.parametrize("params,buffer", [("float32", "bfloat16"), ("float16", "float32"),
                                            ("float64", "float32"), ("float32", "float16")])
def test_a_declared_buffer_format_is_bounded_and_judged_in_it(params, buffer):
    """spec/neuron.md 8.3: the buffer's nodes (mu*buf, c*gd, their sum, a first-step copy into
    a narrower buffer) round to the buffer format; every legal evaluation is within the bounds,
    and the buffers are judged as values of the buffer format.  Undeclared, the same narrower
    buffer is the named bug (8.7)."""
    f, b = get_format(params), get_format(buffer)
    rng = random.Random(len(params) * 7 + len(buffer))
    judged = 0
    for i in range(40):
        options = Options(momentum=rng.choice((0.5, 0.875, 1.5)), dampening=rng.choice(
            (0.0, 0.125)), weight_decay=rng.choice((0.0, 0.0625)), maximize=i % 4 == 0,
            buffer_format=buffer)
        state, x, t, lr = _case(rng, f, options, ("moderate", "cancel")[i % 2])
        if state.buf_w is not None:
            state = State(state.w, state.b, b.round(Fraction(state.buf_w)),
                          b.round(Fraction(state.buf_b)))
        values, violations, _, first = judge_legal_values(f, state, x, t, lr, options, {})
        assert violations == 0, first
        judged += values
    assert judged > 300


def test_an_undeclared_narrower_buffer_fails():
    f = get_format("float32")
    state, x, t, lr = State(0.7, -0.3), 1.1, 0.4, 0.03
    state = State(f.round(Fraction(0.7)), f.round(Fraction(-0.3)))
    x, t, lr = (f.round(Fraction(v)) for v in (1.1, 0.4, 0.03))
    declared = Options(momentum=0.5, buffer_format="bfloat16")
    out = _step_outputs(f, state, x, t, lr, declared)
    assert all(j.ok for j in judge_sgd_step(f, state, x, t, lr, declared, out).values())
    undeclared = judge_sgd_step(f, state, x, t, lr, Options(momentum=0.5), out)
    assert undeclared["buf_w"].violation and undeclared["buf_b"].violation


@pytest.mark.parametrize("params,buffer", [("float32", "bfloat16"), ("float32", "float16"),
                                            ("float64", "float32")])
def test_a_momentum_the_buffer_format_rounds_is_bounded(params, buffer, monkeypatch):
    """spec/neuron.md 8.3: mu*buf in a buffer format that does not hold mu may use mu rounded
    there (numpy's float16 buffer does); its error enters the chain as E_mu (tolerances.md
    2.8).  Every legal evaluation is within the bounds, and without that term some are not."""
    from reference import optim_bounds
    from reference.optim_bounds import buffer_momenta

    f, b = get_format(params), get_format(buffer)
    rng = random.Random(len(params) * 11 + len(buffer))
    cases = []
    for i in range(30):
        mu = f.round(Fraction(rng.choice(("0.9", "0.99", "0.7"))))
        nesterov = i % 3 == 0
        options = Options(momentum=mu, dampening=0.0 if nesterov else rng.choice((0.0, 0.125)),
                          nesterov=nesterov, weight_decay=rng.choice((0.0, 0.0625)),
                          buffer_format=buffer)
        assert len(buffer_momenta(f, options)) == 2  # b does not hold mu
        state, x, t, lr = _case(rng, f, options, ("moderate", "cancel")[i % 2])
        if state.buf_w is None:
            state = State(state.w, state.b, 0.75, -1.25)  # a later step: mu*buf is evaluated
        state = State(state.w, state.b, b.round(Fraction(state.buf_w)),
                      b.round(Fraction(state.buf_b)))
        cases.append((state, x, t, lr, options))
    judged = 0
    for state, x, t, lr, options in cases:
        values, violations, _, first = judge_legal_values(f, state, x, t, lr, options, {})
        assert violations == 0, first
        judged += values
    assert judged > 300
    # the term is needed: bounds that take mu as exact reject some legal value
    monkeypatch.setattr(optim_bounds, "buffer_momenta", lambda fmt, options: [])
    assert sum(judge_legal_values(f, *case, {})[1] for case in cases) > 0
