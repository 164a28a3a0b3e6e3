"""Runs of SGD with options (spec/protocol.md "Runs", spec/neuron.md section 8): the bundled run
implementations and the run mutants of tests/mutants/sgd_*.py.

Every check here is on **exact cases**: small dyadic values (w, b, t multiples of 2^-2 in
[-4, 4] and x of 2^-1 in [-2, 2], with at most 2 significant bits; learning rates 0 and powers
of two; hyperparameters of one or two bits) where every
node of the step from the reported state (``reference.optim``) is a value of the format.  There
every legal evaluation (fused or not, wider work format or not) gives the exact value, so a
reported value must equal ``reference.optim.exact_sgd_step`` from the implementation's own
reported state bit for bit (signed zeros aside: Fractions do not see them); and each named bug
of spec/neuron.md 8.7 departs from it at the step and in the quantities 8.7 names.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import random
import sys
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

import pytest

from reference.formats import FORMATS, get_format, to_fraction
from reference.optim_judge import judge_run
from reference.optim import STEP_QUANTITIES, Options, State, exact_sgd_nodes, exact_sgd_step

MUTANTS = Path(__file__).resolve().parent / "mutants"
BUNDLED = "neuronspec.implementations.bundled."
TORCH = ("torch_sgd", "torch_sgd_foreach", "torch_sgd_fused")
ALL_FORMATS = ("float16", "bfloat16", "float32", "float64")
#: module -> the formats its runs support
RUN_IMPLS = {**{name: ALL_FORMATS for name in TORCH},
             "numpy_scalar": ("float16", "float32", "float64"), "manual": ("float64",)}
PARAMS, BUFS = {"w_new", "b_new"}, {"buf_w", "buf_b"}


def _bundled(name):
    """The run forms of a bundled implementation (by module name, or by its bundled short
    name where its module offers several paths: torch_sgd_foreach, torch_sgd_fused)."""
    if "torch" in name:
        pytest.importorskip("torch")
    from neuronspec.implementations.bundled import CALLABLES

    attr = CALLABLES.get(name, "step")
    module = importlib.import_module(BUNDLED + ("torch_sgd" if name in CALLABLES else name))
    return SimpleNamespace(step=getattr(module, attr), step_run=getattr(module, f"{attr}_run"),
                           step_from=getattr(module, f"{attr}_from"))


def _mutant(name):
    """A fresh instance of the mutant module (its globals start empty; the shared ``_sgd`` beside
    it imports as it does when neuronspec loads the file)."""
    if str(MUTANTS) not in sys.path:
        sys.path.insert(0, str(MUTANTS))
    spec = importlib.util.spec_from_file_location(f"_run_mutant_{name}", MUTANTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _options(fmt, **given):
    """The options mapping of spec/protocol.md R1, every key written."""
    options = {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False,
               "maximize": False, "convention": "torch", "buffer_format": fmt}
    options.update(given)
    return options


def _reference_options(options):
    return Options(momentum=options["momentum"], dampening=options["dampening"],
                   nesterov=options["nesterov"], weight_decay=options["weight_decay"],
                   maximize=options["maximize"])


@lru_cache(maxsize=None)
def _exact_step(fmt, state, x, t, lr, options):
    """The exact step from ``state``, or None where some node of it is not a value of ``fmt``
    (the step is then not an exact case)."""
    nodes, params = exact_sgd_nodes(state, x, t, lr, options)
    for value in list(nodes.values()) + [v for p in params.values() for v in p.values()]:
        q = to_fraction(value)
        r = FORMATS[fmt].round(q)
        if not math.isfinite(r) or Fraction(r) != q:
            return None
    return exact_sgd_step(state, x, t, lr, options)


def _state(out):
    return State(*(None if out[q] is None else float(out[q])
                   for q in ("w_new", "b_new", "buf_w", "buf_b")))


def _departures(outs, w0, b0, data, options, fmt, require_exact=True):
    """Per step from the reported states, the quantities that differ from the exact step:
    ``(k, set)`` of the first step where some differ, or None (only exact steps are judged; a
    step that is not an exact case ends the judging, or fails with ``require_exact``)."""
    reference, state = _reference_options(options), State(w0, b0)
    for k, (out, (x, t, lr)) in enumerate(zip(outs, data), start=1):
        exact = _exact_step(fmt, state, x, t, lr, reference)
        if exact is None:
            assert not require_exact, f"step {k} from {state} is not an exact case in {fmt}"
            return None
        wrong = {q for q in STEP_QUANTITIES
                 if (out[q] is None) != (exact[q] is None)
                 or (out[q] is not None and Fraction(float(out[q])) != exact[q])}
        if wrong:
            return k, wrong
        state = _state(out)
    return None


# --- exact cases -------------------------------------------------------------------------------

def _short(m):
    """Whether the integer ``m`` has at most 2 significant bits."""
    return m == 0 or abs(m) >> ((abs(m) & -abs(m)).bit_length() - 1) <= 3


#: w, b, t: multiples of 2^-2 in [-4, 4]; x: multiples of 2^-1 in [-2, 2]; 2 bits at most (with
#: more, few steps are exact cases in bfloat16: 8 bits)
VALUES = sorted({m / 4 for m in range(-16, 17) if _short(m)})
XS = sorted({m / 2 for m in range(-4, 5) if _short(m)})


def _random_run(rng, fmt, k=3):
    mu = rng.choice([0.0, 0.0, 0.5, 0.25, 0.75, 1.0])
    nesterov = mu > 0 and rng.random() < 0.3
    options = _options(fmt, momentum=mu, nesterov=nesterov,
                       dampening=0.0 if nesterov else rng.choice([0.0, 0.5, 0.25, -0.5]),
                       weight_decay=rng.choice([0.0, 0.125, 0.25, 0.5]),
                       maximize=rng.random() < 0.3)
    data = [(rng.choice(XS), rng.choice(VALUES), rng.choice([0.5, 0.25, 0.125, 0.0625, 0.0]))
            for _ in range(k)]
    return rng.choice(VALUES), rng.choice(VALUES), data, options


@pytest.mark.parametrize("name,fmt", [(n, f) for n, fs in RUN_IMPLS.items() for f in fs])
def test_bundled_runs_are_the_exact_steps_from_their_own_state(name, fmt):
    """Each step of a run, while it is an exact case, equals the exact step from the state the
    run reported before it, bit for bit; step_from from that state gives the same values."""
    module = _bundled(name)
    rng = random.Random(f"{fmt}-15")
    judged = carried = 0
    for _ in range(100):
        w0, b0, data, options = _random_run(rng, fmt)
        outs = list(module.step_run(w0, b0, data, dict(options), fmt))
        assert len(outs) == len(data)
        reference, state = _reference_options(options), State(w0, b0)
        for k, (out, (x, t, lr)) in enumerate(zip(outs, data), start=1):
            exact = _exact_step(fmt, state, x, t, lr, reference)
            if exact is None:
                break  # a rounded step: its successors are no exact cases
            got = {q: None if out[q] is None else Fraction(float(out[q]))
                   for q in STEP_QUANTITIES}
            assert got == exact, (name, fmt, options, state, (x, t, lr), k)
            given = {"w": state.w, "b": state.b, "buf_w": state.buf_w, "buf_b": state.buf_b}
            again = module.step_from(given, x, t, lr, dict(options), fmt)
            assert {q: None if again[q] is None else Fraction(float(again[q]))
                    for q in STEP_QUANTITIES} == exact
            judged += 1
            carried += state.buf_w is not None
            state = _state(out)
    assert judged >= 100 and carried >= 10, (judged, carried)


# --- the named bugs (spec/neuron.md 8.7) ---------------------------------------------------------

CASE = (1.0, 0.5, [(2.0, 1.0, 0.25), (1.5, -0.5, 0.125), (-1.0, 0.5, 0.25)])
#: g_1 = 1 + 2^-8, not a bfloat16 value (a tie, rounded to 1)
NARROW = (1.0, 2.0**-8, [(1.0, 0.0, 0.25), (1.0, 0.5, 0.25)])

NAMED_BUGS = [
    # mutant, options, case, (first step, the quantities that depart there)
    ("sgd_dampening_first_step", dict(momentum=0.5, dampening=0.5), CASE, (1, PARAMS | BUFS)),
    ("sgd_nesterov_old_buffer", dict(momentum=0.5, nesterov=True), CASE, (1, PARAMS)),
    ("sgd_decay_after_momentum", dict(momentum=0.5, weight_decay=0.25), CASE, (1, BUFS)),
    ("sgd_decay_after_momentum", dict(momentum=0.5, weight_decay=0.25, dampening=0.5), CASE,
     (1, BUFS)),
    ("sgd_maximize_ignored", dict(maximize=True), CASE, (1, PARAMS)),
    ("sgd_maximize_ignored", dict(momentum=0.5, maximize=True), CASE, (1, PARAMS | BUFS)),
    ("sgd_maximize_at_update", dict(momentum=0.5, weight_decay=0.25, maximize=True), CASE,
     (1, PARAMS | BUFS)),
    ("sgd_maximize_at_update", dict(momentum=0.5, maximize=True), CASE, (1, BUFS)),
    ("sgd_maximize_at_update", dict(weight_decay=0.25, maximize=True), CASE, (1, PARAMS)),
    ("sgd_bfloat16_buffer", dict(momentum=0.5), NARROW, (1, PARAMS | BUFS)),
    ("sgd_velocity_form", dict(momentum=0.5), CASE, (1, BUFS)),
    ("sgd_tau_for_one_minus_tau", dict(momentum=0.5, dampening=0.25), CASE, (2, PARAMS | BUFS)),
]


@pytest.mark.parametrize("mutant,options,case,expected", NAMED_BUGS,
                         ids=[f"{m}-{i}" for i, (m, *_) in enumerate(NAMED_BUGS)])
def test_each_run_mutant_departs_where_its_named_bug_says(mutant, options, case, expected):
    module = _mutant(mutant)
    w0, b0, data = case
    options = _options("float32", **options)
    outs = list(module.step_run(w0, b0, data, dict(options), "float32"))
    assert _departures(outs, w0, b0, data, options, "float32") == expected
    # ... and the correct algorithm, on the same case, does not depart
    correct = list(_bundled("numpy_scalar").step_run(w0, b0, data, dict(options), "float32"))
    assert _departures(correct, w0, b0, data, options, "float32") is None


@pytest.mark.parametrize("mutant", sorted({m for m, *_ in NAMED_BUGS}))
def test_each_run_mutant_has_a_correct_plain_step(mutant):
    """The bugs need an option (or a buffer), so the plain step is right (and a float64 run
    without options too): the one-step suite cannot see them (tests/test_mutants.py leaves
    tests/mutants/sgd_*.py out)."""
    module = _mutant(mutant)
    w0, b0, data = CASE
    x, t, lr = data[0]
    exact = exact_sgd_step(State(w0, b0), x, t, lr, Options())
    out = module.step(w0, b0, x, t, lr, "float32")
    assert "buf_w" not in out and "buf_b" not in out
    assert {q: Fraction(float(out[q])) for q in exact if q in out} == \
        {q: exact[q] for q in exact if q in out}
    outs = list(module.step_run(w0, b0, data, _options("float64"), "float64"))
    assert _departures(outs, w0, b0, data, _options("float64"), "float64") is None


def test_the_bfloat16_buffer_is_a_float32_bug_only():
    module = _mutant("sgd_bfloat16_buffer")
    w0, b0, data = NARROW
    options = _options("float64", momentum=0.5)
    outs = list(module.step_run(w0, b0, data, dict(options), "float64"))
    assert _departures(outs, w0, b0, data, options, "float64") is None


# --- independence (spec/protocol.md R2; spec/neuron.md 8.4) ----------------------------------------

def _bits(outs):
    return [{q: None if v is None else float(v).hex() for q, v in out.items()} for out in outs]


EARLIER = (0.5, -1.0, [(1.0, 2.0, 0.25), (-2.0, 0.5, 0.125)])  # ends with buffers != 0


@pytest.mark.parametrize("name", list(RUN_IMPLS))
def test_bundled_runs_are_independent(name):
    module = _bundled(name)
    fmt = RUN_IMPLS[name][-1]
    options = _options(fmt, momentum=0.5, dampening=0.25, weight_decay=0.125)
    w0, b0, data = CASE
    first = list(module.step_run(w0, b0, data, dict(options), fmt))
    earlier = list(module.step_run(*EARLIER, dict(options), fmt))
    assert earlier[-1]["buf_w"] != 0 and earlier[-1]["buf_b"] != 0
    module.step_from({"w": 1.0, "b": 2.0, "buf_w": 3.0, "buf_b": -1.0}, 1.0, 0.5, 0.25,
                     dict(options), fmt)
    second = list(module.step_run(w0, b0, data, dict(options), fmt))
    assert _bits(second) == _bits(first)
    assert _departures(second, w0, b0, data, options, fmt) is None  # judged from its own S_0


def test_the_state_leak_mutant_is_not_independent():
    module = _mutant("sgd_state_leaks")
    options = _options("float32", momentum=0.5)
    w0, b0, data = CASE
    first = list(module.step_run(w0, b0, data, dict(options), "float32"))
    assert _departures(first, w0, b0, data, options, "float32") is None  # a fresh import
    list(module.step_run(*EARLIER, dict(options), "float32"))
    second = list(module.step_run(w0, b0, data, dict(options), "float32"))
    assert _departures(second, w0, b0, data, options, "float32") == (1, PARAMS | BUFS)
    module.reset()
    assert _bits(module.step_run(w0, b0, data, dict(options), "float32")) == _bits(first)


# --- declining (spec/protocol.md R2) ---------------------------------------------------------------

@pytest.mark.parametrize("name", TORCH)
def test_torch_runs_decline_what_torch_does_not_do(name):
    module = _bundled(name)
    w0, b0, data = CASE
    declined = [
        ("float32", _options("float32", momentum=0.5, convention="keras"), data),
        ("float32", _options("float32", convention="optax"), data),
        ("float32", _options("float32", momentum=0.5), data[:1] + [(1.0, 0.5, -0.25)]),
        ("float16", _options("float32", momentum=0.5), data),  # a wider buffer
        ("float32", dict(_options("float32"), lookahead=0.5), data),
        ("float8", _options("float8"), data),
    ]
    for fmt, options, run in declined:
        with pytest.raises(NotImplementedError):
            list(module.step_run(w0, b0, run, dict(options), fmt))
    with pytest.raises(NotImplementedError):
        module.step_from({"w": 1.0, "b": 0.5, "buf_w": None, "buf_b": None}, 1.0, 0.5, -0.25,
                         _options("float32"), "float32")
    # accepted: -0.0 (torch accepts it), a subnormal lr, an unknown key that is off
    for run in ([(1.0, 0.5, -0.0)], [(1.0, 0.5, 2.0**-149)]):
        assert len(list(module.step_run(w0, b0, run, _options("float32"), "float32"))) == 1
    assert len(list(module.step_run(w0, b0, data, dict(_options("float32"), lookahead=False),
                                    "float32"))) == 3


@pytest.mark.parametrize("name", ["numpy_scalar", "manual"])
def test_the_other_runs_decline_other_conventions_and_buffer_formats(name):
    module = _bundled(name)
    fmt = RUN_IMPLS[name][-1]
    w0, b0, data = CASE
    # (numpy_scalar computes every convention of spec/neuron.md 8.6, each state in the
    # parameter format; manual only torch's)
    other = "jax" if name == "numpy_scalar" else "keras"
    for options in (_options(fmt, momentum=0.5, convention=other),
                    _options(fmt, momentum=0.5, buffer_format="bfloat16"),
                    _options(fmt, momentum=0.5, convention="keras", buffer_format="bfloat16")):
        with pytest.raises(NotImplementedError):
            list(module.step_run(w0, b0, data, options, fmt))
    if name == "manual":
        with pytest.raises(NotImplementedError):
            list(module.step_run(w0, b0, data, _options("float32"), "float32"))


def test_the_new_bundled_torch_paths_load_and_fused_takes_every_format():
    torch = pytest.importorskip("torch")
    from neuronspec.implementations import load

    w0, b0, (x, t, lr) = CASE[0], CASE[1], CASE[2][0]
    exact = exact_sgd_step(State(w0, b0), x, t, lr, Options())
    for name in ("torch_sgd_foreach", "torch_sgd_fused"):
        impl = load(name)
        for fmt in ALL_FORMATS:  # torch 2.13.0's CPU build runs fused=True in all four
            if name.endswith("fused") and not torch.__version__.startswith("2.13.0"):
                continue
            out = impl.step(w0, b0, x, t, lr, fmt)
            assert {q: Fraction(float(out[q])) for q in exact if q in out} == \
                {q: exact[q] for q in exact if q in out}


# ---- the run judge (reference.optim_judge) on the bundled runs and on the mutants -----------

RANDOM_SETS = (dict(), dict(momentum=0.5), dict(momentum=0.875, dampening=0.25),
               dict(momentum=0.5, nesterov=True), dict(weight_decay=0.0625),
               dict(momentum=0.75, weight_decay=0.125, maximize=True), dict(maximize=True))
#: Where the exact level does not explain every value (the bounded level passes): torch's
#: fused CPU kernel in float16/bfloat16 rounds in a way none of spec/neuron.md 8.3's modelled
#: evaluations does (its open question 8.8).
NOT_ALL_EXPLAINED = {("torch_sgd_fused", "float16"), ("torch_sgd_fused", "bfloat16")}


def _judge(fmt, w0, b0, data, options, outs):
    return judge_run(fmt, w0, b0, data, _reference_options(options), outs, exact_level=True)


@pytest.mark.parametrize("name,fmt", [(n, f) for n, fs in RUN_IMPLS.items() for f in fs])
def test_bundled_runs_conform_on_random_runs(name, fmt):
    """Ordinary values (not exact in the format): every step within its bound of the exact step
    from the reported state, and every value a legal evaluation's bit for bit."""
    module, f, rng = _bundled(name), get_format(fmt), random.Random(11)

    def value(lo=-4, hi=4):
        return f.round(Fraction(rng.uniform(0.5, 1) * 2.0 ** rng.randint(lo, hi)
                                * rng.choice((-1, 1))))

    unexplained = 0
    for given in RANDOM_SETS:
        options = _options(fmt, **given)
        for _ in range(3):
            w0, b0 = value(), value()
            data = [(value(), value(), abs(value(-6, -2))) for _ in range(4)]
            verdict = _judge(f, w0, b0, data, options,
                             list(module.step_run(w0, b0, data, dict(options), fmt)))
            assert verdict.ok, (given, verdict.first_failure())
            unexplained += sum(not v for step in verdict.explained for v in step.values())
    assert (unexplained > 0) == ((name, fmt) in NOT_ALL_EXPLAINED), unexplained


@pytest.mark.parametrize("mutant,options,case,expected", NAMED_BUGS,
                         ids=[f"{m}-{i}" for i, (m, *_) in enumerate(NAMED_BUGS)])
def test_the_run_judge_rejects_each_named_bug_at_its_step(mutant, options, case, expected):
    """A check must be able to fail: the bounded level rejects each mutant at the step, and on
    a quantity, its named bug says (the correct algorithm passes the same run)."""
    w0, b0, data = case
    options = _options("float32", **options)
    outs = list(_mutant(mutant).step_run(w0, b0, data, dict(options), "float32"))
    step, judgement = _judge(get_format("float32"), w0, b0, data, options, outs).first_failure()
    assert step == expected[0] and judgement.quantity in expected[1], (step, judgement)
    correct = list(_bundled("numpy_scalar").step_run(w0, b0, data, dict(options), "float32"))
    assert _judge(get_format("float32"), w0, b0, data, options, correct).ok


@pytest.mark.parametrize("name", ["torch_sgd", "torch_sgd_foreach", "torch_sgd_fused"])
def test_the_plain_step_of_the_torch_paths_is_conformant(name):
    """Their plain step (a run of one step with every option off), which the default run of
    this suite leaves out of the whole property suite (conftest.SELF_TEST_IMPLS)."""
    pytest.importorskip("torch")
    from neuronspec.implementations.load import load
    from neuronspec.runs.check import check

    report = check([load(name)], examples=10, sweep=0, seed=3)
    assert report["verdict"] == "conformant", [
        (f, r["failures"]) for i in report["implementations"] for f, r in i["formats"].items()]


def test_the_fingerprint_tells_the_torch_forms_apart():
    """Where the forms round differently, the report says which form an implementation uses:
    torch's for-loop fuses the buffer's add_(grad, alpha=1 - dampening) (momentum-fused-c),
    its fused kernel computes mu*buf + c*g with the other product fused (momentum-fused-mu);
    numpy fuses nothing."""
    pytest.importorskip("torch")
    from neuronspec.cases.options import parse_spec
    from neuronspec.implementations.load import load
    from neuronspec.runs.sgd import check_runs

    option_set = parse_spec("momentum=0.9,dampening=0.1,weight_decay=1e-4")
    first = {}
    for name in ("torch_sgd", "torch_sgd_fused", "numpy"):
        (result,) = check_runs(load(name), ["float32"], [option_set], runs=3, steps=4)
        assert result.verdict == "conformant"
        first[name] = result.as_dict()["evaluations"][0]
    assert "momentum-fused-c" in first["torch_sgd"] and "update-fused" in first["torch_sgd"]
    assert "momentum-fused-mu" in first["torch_sgd_fused"]
    assert first["numpy"].startswith("canonical+c=") and "fused" not in first["numpy"]


def test_a_declared_buffer_format_is_checked_and_torch_declines_it():
    """numpy runs float16 parameters with float32 buffers (mixed precision, declared) and is
    judged in them; torch.optim.SGD keeps the buffer in the parameter format and declines."""
    from neuronspec.cases.options import parse_spec
    from neuronspec.implementations.load import load
    from neuronspec.runs.sgd import check_runs

    sets = [parse_spec("momentum=0.875,dampening=0.125"), parse_spec("momentum=0.5,nesterov"),
            parse_spec("momentum=0.9,nesterov")]  # (0.9: float16 rounds it in mu*buf)
    for fmt, buffer in (("float16", "float32"), ("float32", "float16")):
        for result in check_runs(load("numpy"), [fmt], sets, runs=3, steps=4,
                                 buffer_format=buffer):
            assert result.verdict == "conformant", result.failures
            assert all(f.explained == f.values for f in result.quantities.values())
            if buffer == "float16" and result.spec.startswith("momentum=0.9"):
                assert result.consistent and all("mu_buffer=" in name  # fl16(mu)
                                                 for name in result.consistent)
    pytest.importorskip("torch")
    (result,) = check_runs(load("torch_sgd"), ["float16"], sets[:1], runs=1, steps=2,
                           buffer_format="float32")
    assert result.verdict == "not checked" and "parameter format" in result.unsupported


def test_the_level_decides_a_run_verdict():
    """As in the one-step check: at the exact level a value no legal evaluation gives fails
    (named, with its step); at the bounded level the same runs pass.  torch's fused kernel in
    float16 gives such values (spec/neuron.md 8.8)."""
    pytest.importorskip("torch")
    from neuronspec.implementations.load import load
    from neuronspec.runs.sgd import check_runs

    impl = load("torch_sgd_fused")
    exact = check_runs(impl, ["float16"], runs=3, steps=4, level="exact")
    assert any(r.verdict == "non-conformant" and r.unexplained for r in exact)
    assert all(r.failed_runs == 0 for r in exact)
    assert any("no legal evaluation gives this value" in f["why"]
               for r in exact for f in r.failures)
    bounded = check_runs(impl, ["float16"], runs=3, steps=4, level="bounded")
    assert all(r.verdict == "conformant" for r in bounded)
