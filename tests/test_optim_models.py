"""Runs under the models that widen the domain or the evaluations (spec/neuron.md 8.1, 8.3;
spec/tolerances.md 2.8): ``hyper-binary64`` (momentum, dampening and weight decay given as
binary64 values, each node using each as given or rounded) and ``lr-binary64`` (a binary64
learning rate, ``lq`` using it as given or rounded).  Every legal evaluation is within its
bound, the new terms enter the bound, the batch path is the scalar one, torch's roundings are
among the evaluations, and a wrong rounding is rejected."""

from __future__ import annotations

import random
from fractions import Fraction

import numpy as np
import pytest

from reference.formats import get_format
from reference.model import get_model
from reference.optim import Options, State
from reference.optim_bounds import node_constants, sgd_bounds
from reference.optim_judge import judge_run, judge_sgd_step
from reference.optim_rounded import run_evaluations, sgd_evaluations, sgd_legal
from neuronspec.runs.run_soundness import judge_legal_values

HYPER, LR64 = "ieee+hyper-binary64", "ieee+lr-binary64"
#: binary64 hyperparameters as torch users pass them (none a value of float32 or narrower)
TORCH_SETS = (Options(momentum=0.9, weight_decay=1e-4),
              Options(momentum=0.9, dampening=0.1, weight_decay=1e-4),
              Options(momentum=0.99, nesterov=True, weight_decay=3e-4, maximize=True))
#: option sets of values of every format, for binary64 learning rates
LR_SETS = (Options(), Options(momentum=0.875, dampening=0.25, weight_decay=0.0625),
           Options(momentum=0.75, nesterov=True, maximize=True))
#: per model, its option sets
SETS = {HYPER: TORCH_SETS, LR64: LR_SETS}


def _value(rng: random.Random, fmt, lo: int = -6, hi: int = 6) -> float:
    v = rng.uniform(0.5, 1.0) * 2.0 ** rng.randint(lo, hi) * rng.choice((-1, 1))
    return fmt.round(Fraction(v))


def _steps(fmt, options: Options, n: int, seed: int, model: str = HYPER) -> list:
    """(state, x, t, lr): moderate values, y next to t, and later steps with buffers; under
    lr-binary64, binary64 rates (``cases.runs.binary64_rates``)."""
    from neuronspec.cases.runs import binary64_rates

    rng = random.Random(seed)
    out = []
    for i in range(n):
        w, b, x, t, bw, bb = (_value(rng, fmt) for _ in range(6))
        if i % 2:  # cancellation: t next to w*x + b
            t = fmt.round(Fraction(fmt.round(Fraction(w) * Fraction(x))) + Fraction(b))
        lr = abs(_value(rng, fmt, -10, -1))
        if model == LR64:
            lr = float(binary64_rates([lr], (seed, i))[0])
        first = not options.buffered or i % 3 == 0
        out.append((State(w, b, None if first else bw, None if first else bb), x, t, lr))
    return out


def test_torch_roundings_of_the_constants_are_admitted():
    """neuron.md 8.3: torch uses fl32(mu) in buf.mul_, fl_F(fl32(mu)) as the Nesterov alpha and
    fl_F(fl32(wd)) as the decay's alpha; each is a value its node may use, as is the value
    as given, and nothing else is."""
    options = TORCH_SETS[2]
    f32 = get_format("float32")
    for name in ("float16", "bfloat16", "float32"):
        F = get_format(name)
        values = node_constants(F, options, get_model(HYPER))
        mu, wd = Fraction(0.99), Fraction(3e-4)
        assert Fraction(f32.round(mu)) in values["mu_buffer"] and mu in values["mu_buffer"]
        assert Fraction(F.round(Fraction(f32.round(mu)))) in values["mu"]
        assert Fraction(F.round(Fraction(f32.round(wd)))) in values["wd"]
        assert len(values["wd"]) <= 4 and all(abs(v - wd) < wd / 100 for v in values["wd"])
    assert node_constants(get_format("float32"), options, get_model("ieee")) == {}


@pytest.mark.parametrize("name,model", [
    pytest.param(f, m, marks=pytest.mark.slow) if f in ("float16", "bfloat16") else (f, m)
    for m in (HYPER, LR64) for f in ("float16", "bfloat16", "float32", "float64")])
def test_every_legal_evaluation_is_within_its_bound(name, model):
    F = get_format(name)
    worst: dict = {}
    judged = 0
    for k, options in enumerate(SETS[model]):
        for state, x, t, lr in _steps(F, options, 8, seed=k + len(name), model=model):
            values, bad, _, first = judge_legal_values(F, state, x, t, lr, options, worst,
                                                       model)
            assert bad == 0, first
            judged += values
    assert judged > 100
    assert worst["w_new"] > 0.25 and worst["buf_w"] > 0.25  # (not orders of magnitude wide)
    if model == LR64 and name != "float64":
        assert any(not F.contains(lr) for _, _, _, lr in _steps(F, LR_SETS[0], 3, 0, model))


@pytest.mark.parametrize("model", [HYPER, LR64])
def test_the_constants_errors_enter_their_nodes(model, monkeypatch):
    """E_wd, E_mu and E_lr (tolerances.md 2.8) widen exactly the quantities downstream of dq,
    mb, nm and lq: with the constants taken as exact, the buffers' (under hyper-binary64) and
    parameters' bounds are smaller and the plain step's are the same; a quartered bound is
    caught."""
    from reference import optim_bounds
    from neuronspec.runs import run_soundness

    F = get_format("float32")
    x, t, lr = 1.5, 0.25, 0.125 if model == HYPER else 0.1
    cases = [(State(0.8125, -0.375, *((0.625, -1.25) if o.buffered else ())), o)
             for o in SETS[model]]
    wide = [sgd_bounds(F, state, x, t, lr, o, model) for state, o in cases]
    if model == HYPER:
        monkeypatch.setattr(optim_bounds, "node_constants", lambda fmt, options, model: {})
        widened = ("w_new", "b_new", "buf_w", "buf_b")
    else:
        monkeypatch.setattr(optim_bounds, "lr_error", lambda A, *a: (A.zero, A.ops.false))
        widened = ("w_new", "b_new")
    for (state, options), got in zip(cases, wide):
        narrow = sgd_bounds(F, state, x, t, lr, options, model)
        for q, bound in got.items():
            if bound is not None:
                assert bound > narrow[q] if q in widened else bound == narrow[q], q
    monkeypatch.undo()
    monkeypatch.setattr(run_soundness, "sgd_bounds", lambda *a: {
        q: b and b / 4 for q, b in sgd_bounds(*a).items()})
    options = SETS[model][1]
    steps = _steps(F, options, 6, seed=3, model=model)
    assert sum(judge_legal_values(F, *s, options, {}, model)[1] for s in steps) > 0


def test_without_the_model_binary64_constants_are_refused():
    F = get_format("float32")
    state, x, t, lr = _steps(F, TORCH_SETS[0], 1, seed=1)[0]
    with pytest.raises(ValueError, match="momentum = 0.9 is not a finite float32 value"):
        sgd_bounds(F, state, x, t, lr, TORCH_SETS[0])
    assert not any("wd=" in e.name for e in run_evaluations(F, Options(
        momentum=F.round(Fraction(0.9)), weight_decay=F.round(Fraction(1e-4)))).evaluations)


def _stepper(fmt, options: Options, model: str, pick):
    """A run implementation that takes, at each step, the values of the evaluation ``pick``
    chooses among ``sgd_evaluations`` of ``options`` (which may differ from the options the
    run is judged under)."""
    def run(w0, b0, data):
        state, out = State(w0, b0), []
        for x, t, lr in data:
            found = sgd_evaluations(fmt, state, x, t, lr, options, model)
            step = found[pick(found)]
            out.append(step)
            state = State(step["w_new"], step["b_new"], step["buf_w"], step["buf_b"])
        return out
    return run


def test_a_wrong_rounding_of_the_momentum_is_rejected():
    """float32 parameters, momentum=0.9 as a Python float: torch's fl32(0.9) is explained at
    the exact level; the momentum rounded to bfloat16, or to float32 in the wrong direction,
    is not (and the bfloat16 one is outside its bounds too)."""
    F, bf = get_format("float32"), get_format("bfloat16")
    options = TORCH_SETS[1]
    w0, b0 = 0.75, -0.5
    data = [(1.25, 0.5, 0.125), (-0.75, 1.5, 0.0625), (0.5, -0.25, 0.25)]
    torch_like = _stepper(F, options, HYPER, lambda found: next(
        n for n in found if f"mu_buffer={float(F.round(Fraction(0.9))).hex()}" in n))
    good = judge_run(F, w0, b0, data, options, torch_like(w0, b0, data), HYPER,
                     exact_level=True)
    assert good.ok and all(all(e) for e in good.explained[1:])
    down = np.nextafter(np.float32(0.9), np.float32(0))  # fl32(0.9) rounds up: a wrong way
    for mu in (bf.round(Fraction(0.9)), float(down)):
        wrong = _stepper(F, Options(momentum=mu, dampening=0.1, weight_decay=1e-4), HYPER,
                         lambda found: next(iter(found)))
        verdict = judge_run(F, w0, b0, data, options, wrong(w0, b0, data), HYPER,
                            exact_level=True)
        unexplained = [q for step in verdict.explained[1:] for q, names in step.items()
                       if not names]
        assert {"buf_w", "buf_b"} & set(unexplained), mu
        assert not verdict.ok or mu == float(down), mu  # (bfloat16's: outside its bounds)


def test_a_step_judged_under_the_model_from_a_state():
    F = get_format("float32")
    options = TORCH_SETS[2]
    state, x, t, lr = State(0.5, -0.25, 0.125, 0.375), 1.5, 0.75, 0.0625
    legal = sgd_legal(F, state, x, t, lr, options, HYPER)
    for name, out in list(sgd_evaluations(F, state, x, t, lr, options, HYPER).items())[::50]:
        judged = judge_sgd_step(F, state, x, t, lr, options, out, HYPER, legal=legal)
        assert all(j.ok for j in judged.values()), name


def _exact(v) -> Fraction:
    """A float64 or x87 long double value, exactly."""
    m, e = np.frexp(np.longdouble(v))
    return Fraction(int(np.ldexp(m, 64))) * Fraction(2) ** (int(e) - 64)


def _columns(steps: list) -> dict:
    later = steps[0][0].buf_w is not None
    cols = {k: np.array([float(getattr(s[0], k)) for s in steps]) for k in ("w", "b")}
    for j, k in enumerate(("x", "t", "lr")):
        cols[k] = np.array([float(s[1 + j]) for s in steps])
    for k in ("buf_w", "buf_b"):
        cols[k] = np.array([float(getattr(s[0], k)) for s in steps]) if later else None
    return cols


@pytest.mark.parametrize("name", ["float32", pytest.param("float16", marks=pytest.mark.slow),
                                  pytest.param("bfloat16", marks=pytest.mark.slow),
                                  pytest.param("float64", marks=pytest.mark.slow)])
@pytest.mark.parametrize("model", [HYPER, LR64])
def test_the_batch_path_is_the_scalar_one(name, model):
    """The batch chain (reference.batch.optim_chain) within its interval of the exact bounds,
    the batch evaluations (reference.batch.optim_legal) the scalar ones bit for bit."""
    from reference.batch.legal import same_bits
    from reference.batch.optim_chain import batch_sgd_bounds
    from reference.batch.optim_legal import sgd_evaluations_batch

    F = get_format(name)
    checked = 0
    for k, options in enumerate(SETS[model]):
        steps = _steps(F, options, 7, seed=70 + k, model=model)
        for later in (False, True):
            chunk = [s for s in steps if (s[0].buf_w is not None) == later]
            if not chunk:
                continue
            cols = _columns(chunk)
            bounds = batch_sgd_bounds(F, cols, options, model)
            out, undecided = sgd_evaluations_batch(F, cols, options, model)
            wants = [sgd_evaluations(F, *s, options, model) for s in chunk]
            assert list(out) == list(wants[0]) and not undecided.any()
            for i, step in enumerate(chunk):
                for q, bound in sgd_bounds(F, *step, options, model).items():
                    if bound is not None:
                        got = bounds[q]
                        assert _exact(got.low[i]) <= bound <= _exact(got.high[i]), (q, i)
                        checked += 1
            for evaluation, values in out.items():
                for q, got in values.items():
                    if got is not None:
                        want = np.array([w[evaluation][q] for w in wants])
                        assert same_bits(got, want).all(), (evaluation, q)
    assert checked > 30


@pytest.mark.slow
@pytest.mark.parametrize("name", ["float32", "float16", "bfloat16"])
def test_torch_sgd_with_python_float_hyperparameters_is_conformant(name):
    """torch.optim.SGD given momentum=0.9, weight_decay=1e-4 as Python floats: conformant at
    the exact level under hyper-binary64, and its fingerprint names torch's roundings (8.3):
    fl32(mu) in buf.mul_, fl_F(fl32(wd)) as the decay's alpha."""
    pytest.importorskip("torch")
    from neuronspec.cases.options import parse_spec
    from neuronspec.implementations.load import load
    from neuronspec.runs.sgd import check_runs

    F, f32 = get_format(name), get_format("float32")
    runs, steps = (3, 6) if name == "float32" else (6, 8)  # (enough to tell the roundings)
    (result,) = check_runs(load("torch_sgd"), [name], [parse_spec(
        "momentum=0.9,weight_decay=1e-4")], runs=runs, steps=steps, model=HYPER)
    assert result.verdict == "conformant", result.failures
    assert result.options["momentum"] == 0.9 and result.options["weight_decay"] == 1e-4
    wd = float(F.round(Fraction(f32.round(Fraction(1e-4))))).hex()
    assert result.consistent and all(f"wd={wd}" in n for n in result.consistent)
    # buf.mul_ uses fl32(0.9) (float16: a value as given may give the same bits), never fl_F
    mu, wrong = (float(f.round(Fraction(0.9))).hex() for f in (f32, F))
    assert all(f"mu_buffer={mu}" in n for n in result.consistent) if name == "float32" else \
        not any(f"mu_buffer={wrong}" in n for n in result.consistent)


def test_a_wrong_rounding_of_the_learning_rate_is_rejected():
    """float32 parameters, a binary64 lr: fl32(lr) in lq (torch's alpha) is explained at the
    exact level; lr rounded to bfloat16 is not, and is outside its bounds."""
    F, bf = get_format("float32"), get_format("bfloat16")
    options = LR_SETS[1]
    w0, b0 = 0.75, -0.5
    data = [(1.25, 0.5, 0.1), (-0.75, 1.5, 0.3), (0.5, -0.25, 0.7)]
    torch_like = _stepper(F, options, LR64, lambda found: next(
        n for n in found if n.endswith("+lr=float32")))
    good = judge_run(F, w0, b0, data, options, torch_like(w0, b0, data), LR64,
                     exact_level=True)
    assert good.ok and all(all(e.values()) for e in good.explained)
    wrong = _stepper(F, options, "ieee", lambda found: next(iter(found)))
    rounded = [(x, t, float(bf.round(Fraction(lr)))) for x, t, lr in data]
    reported = wrong(w0, b0, rounded)
    verdict = judge_run(F, w0, b0, data, options, reported, LR64, exact_level=True)
    assert not verdict.ok and not verdict.explained[0]["w_new"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["float16", "float32"])
def test_torch_sgd_with_a_python_float_lr_is_conformant(name):
    """torch.optim.SGD given a binary64 lr: conformant at the exact level under lr-binary64,
    its fingerprint naming lr rounded (to float32, then to float16), never as given."""
    pytest.importorskip("torch")
    from neuronspec.cases.options import parse_spec
    from neuronspec.implementations.load import load
    from neuronspec.runs.sgd import check_runs

    (result,) = check_runs(load("torch_sgd"), [name], [parse_spec(
        "momentum=0.875,dampening=0.25")], runs=4, steps=6, model=LR64)
    assert result.verdict == "conformant", result.failures
    # (float16: fl16(lr) and fl16(fl32(lr)) differ only on double-rounding cases, rare)
    paths = ("float32",) if name == "float32" else ("float16", "float32-float16")
    assert result.consistent and all(n.endswith(tuple(f"+lr={p}" for p in paths))
                                     for n in result.consistent)


FTZ = "ieee+ftz"


def _tiny_steps(fmt, n: int, seed: int) -> list:
    """(options, state, x, t, lr): steps at the bottom of the format (subnormal parameters,
    buffers and products), every other one with moderate values."""
    rng = random.Random(seed)
    sets = (Options(momentum=0.875, dampening=0.25, weight_decay=0.0625),
            Options(momentum=0.75, nesterov=True, maximize=True), Options(weight_decay=0.125))
    out = []
    for i in range(n):
        options = sets[i % len(sets)]
        lo, hi = (fmt.emin - 2, fmt.emin + 4) if i % 2 == 0 else (-6, 6)
        w, b, t, bw, bb = (_value(rng, fmt, lo, hi) for _ in range(5))
        x, lr = _value(rng, fmt, -2, 2), abs(_value(rng, fmt, -4, 0))
        later = options.buffered and i % 3 != 0
        out.append((options, State(w, b, bw if later else None, bb if later else None), x, t,
                    lr))
    return out


@pytest.mark.parametrize("name", ["float32", pytest.param("float16", marks=pytest.mark.slow),
                                  pytest.param("bfloat16", marks=pytest.mark.slow),
                                  pytest.param("float64", marks=pytest.mark.slow)])
def test_flush_to_zero_is_within_its_bounds_and_needs_its_terms(name, monkeypatch):
    """Under ftz every legal evaluation of a step of a run (subnormal inputs read as zero,
    results flushed) is within its bound; with the inputs' flush errors left out
    (bounds.flush_error, as the plain step's chain takes them) some are not."""
    from reference import optim_bounds

    F = get_format(name)
    steps = _tiny_steps(F, 24, seed=len(name))
    worst: dict = {}
    for options, *step in steps:
        values, bad, _, first = judge_legal_values(F, *step, options, worst, FTZ)
        assert bad == 0, first
    assert worst["w_new"] > 0.25
    monkeypatch.setattr(optim_bounds, "flush_error", lambda A, fmt, model, v: A.zero)
    assert sum(judge_legal_values(F, *step, options, {}, FTZ)[1]
               for options, *step in steps) > 0


def test_a_flushing_run_is_explained_under_ftz_alone():
    """float32, w0 subnormal: an evaluation that reads it as zero reports w_new = 0; legal
    (and named ftz) under ieee+ftz, outside its bound under ieee."""
    F = get_format("float32")
    options = Options(momentum=0.5)
    w0, b0, data = 2.0 ** -140, 0.0, [(1.0, 0.0, 0.25), (1.0, 0.0, 0.25)]
    flushing = _stepper(F, options, FTZ, lambda found: next(
        n for n in found if n.startswith("ftz")))
    reported = flushing(w0, b0, data)
    assert reported[0]["w_new"] == 0
    under_ftz = judge_run(F, w0, b0, data, options, reported, FTZ, exact_level=True)
    assert under_ftz.ok and all(all(e.values()) for e in under_ftz.explained)
    assert not judge_run(F, w0, b0, data, options, reported, "ieee").ok


def test_the_batch_path_leaves_flush_to_zero_to_the_scalar_one():
    from reference.batch.optim_chain import batch_sgd_bounds
    from reference.batch.optim_legal import sgd_evaluations_batch

    cols = {k: np.array([0.5]) for k in ("w", "b", "x", "t", "lr")}
    for batch in (batch_sgd_bounds, sgd_evaluations_batch):
        with pytest.raises(ValueError, match="scalar path"):
            batch("float32", dict(cols, buf_w=None, buf_b=None), Options(), FTZ)
