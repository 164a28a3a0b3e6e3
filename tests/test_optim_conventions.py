"""The conventions keras, optax and optax-decay-after of runs (spec/neuron.md 8.6,
spec/tolerances.md 2.8 "The other conventions"): the exact reference against each framework's
recurrence written out in Fractions, the agreements K1 and O1 and the differences 8.6 states,
every legal evaluation within its bound, and the judge catching a bound made too narrow and the
wrong forms of each convention."""

from __future__ import annotations

import math
import random
import zlib
from fractions import Fraction

import pytest

from reference.formats import get_format, to_fraction
from reference.optim import CONVENTIONS, Options, State, exact_trajectory
from reference.optim_bounds import sgd_bounds
from reference.optim_judge import judge_run
from reference.optim_rounded import run_evaluations, sgd_evaluations
from neuronspec.runs.run_soundness import judge_legal_values

F = Fraction
FORMATS = ("float16", "bfloat16", "float32", "float64")
OTHERS = ("keras", "optax", "optax-decay-after")


def _grads(theta, x, t):
    r = theta["w"] * x + theta["b"] - t
    return {"w": r * x, "b": r}, r


def framework_algorithm(convention, w0, b0, data, mu=F(0), nesterov=False, wd=F(0), bug=""):
    """The recurrence of 8.6 of ``convention``, line by line, in Fractions (the state zero at
    the start; none reported without momentum).  ``bug`` names a wrong form instead."""
    theta = {"w": F(w0), "b": F(b0)}
    state = {"w": F(0), "b": F(0)}
    steps = []
    for x, t, lr in data:
        x, t, lr = F(x), F(t), F(lr)
        G, r = _grads(theta, x, t)
        out = {"y": theta["w"] * x + theta["b"], "loss": r * r / 2, "dL_dw": G["w"],
               "dL_db": G["b"]}
        for p in ("w", "b"):
            if convention == "keras":
                g = G[p] + wd * theta[p] if bug == "coupled decay" else G[p]
                if wd and bug != "coupled decay":  # theta - theta*wd*lr, before the update
                    theta[p] = theta[p] - theta[p] * wd * lr
                if mu:
                    state[p] = mu * state[p] - lr * g
                    theta[p] = theta[p] + (mu * state[p] - lr * g if nesterov else state[p])
                else:
                    theta[p] = theta[p] - lr * g
                continue
            g = G[p] + wd * theta[p] if convention == "optax" else G[p]
            if mu:
                c = F(1, 2) if bug == "dampened trace" else 1
                state[p] = c * g + mu * state[p]
                u = g + mu * state[p] if nesterov else state[p]
            else:
                u = g
            if convention == "optax-decay-after":
                u = u + wd * theta[p]
            theta[p] = theta[p] + (-lr) * u
        out.update(w_new=theta["w"], b_new=theta["b"], buf_w=state["w"] if mu else None,
                   buf_b=state["b"] if mu else None)
        steps.append(out)
    return steps


def _options(rng: random.Random, convention: str) -> Options:
    mu = rng.choice([0.0, 0.5, 0.75, 0.25, 1.0] + ([1.5] if convention != "keras" else []))
    return Options(momentum=mu, nesterov=rng.random() < 0.4,
                   weight_decay=rng.choice([0.0, 0.125, 0.25]), convention=convention)


def _run(rng: random.Random, k: int, lr=None):
    def v():
        return rng.uniform(-3, 3)
    data = [(v(), v(), lr if lr is not None else rng.choice([0.25, 0.125, 0.5, 0.0625]))
            for _ in range(k)]
    return v(), v(), data


@pytest.mark.parametrize("convention", OTHERS)
def test_the_exact_trajectory_is_the_frameworks_recurrence(convention):
    rng = random.Random(len(convention))
    for _ in range(60):
        options = _options(rng, convention)
        w0, b0, data = _run(rng, rng.randint(1, 5))
        expected = framework_algorithm(convention, w0, b0, data, F(options.momentum),
                                       options.nesterov, F(options.weight_decay))
        assert exact_trajectory(w0, b0, data, options) == expected, options


def test_each_convention_is_a_node_table_of_the_same_roles():
    for name, rules in CONVENTIONS.items():
        names = {n.name for n in rules.nodes}
        assert "theta_new" in names and rules.state in names, name
        assert set(rules.buffer_nodes) <= names and rules.state in rules.buffer_nodes
        assert rules.zero_state == (name != "torch")


def _torch(**kw) -> Options:
    return Options(**kw)


def _equal_parameters(a, b):
    return all(x["w_new"] == y["w_new"] and x["b_new"] == y["b_new"] for x, y in zip(a, b))


def test_k1_keras_equals_torch_without_dampening_decay_maximize_and_with_a_constant_lr():
    rng = random.Random(11)
    for _ in range(40):
        mu, nesterov = rng.choice([0.5, 0.75, 1.0]), rng.random() < 0.5
        w0, b0, data = _run(rng, 4, lr=0.125)
        torch = exact_trajectory(w0, b0, data, _torch(momentum=mu, nesterov=nesterov))
        keras = exact_trajectory(w0, b0, data, Options(momentum=mu, nesterov=nesterov,
                                                       convention="keras"))
        assert _equal_parameters(torch, keras)
        for s, k in zip(torch, keras):  # v_k = -lr*buf_k
            assert k["buf_w"] == -F(1, 8) * s["buf_w"] and k["buf_b"] == -F(1, 8) * s["buf_b"]


def test_o1_optax_equals_torch_for_any_schedule_with_the_decay_before_the_trace():
    rng = random.Random(12)
    for _ in range(40):
        mu, nesterov = rng.choice([0.5, 0.75, 1.5]), rng.random() < 0.5
        wd = rng.choice([0.0, 0.125])
        w0, b0, data = _run(rng, 4)  # (a schedule: lr drawn per step)
        torch = exact_trajectory(w0, b0, data, _torch(momentum=mu, nesterov=nesterov,
                                                      weight_decay=wd))
        optax = exact_trajectory(w0, b0, data, Options(momentum=mu, nesterov=nesterov,
                                                       weight_decay=wd, convention="optax"))
        assert torch == optax  # the trace is the buffer: every quantity equal
        if wd == 0:
            after = exact_trajectory(w0, b0, data, Options(momentum=mu, nesterov=nesterov,
                                                           convention="optax-decay-after"))
            assert after == torch


def test_the_differences_of_8_6():
    w0, b0 = F(3, 4), F(-1, 2)
    data = [(1.5, 0.25, 0.125), (-0.75, 1.0, 0.25)]
    G1w = (w0 * F(3, 2) + b0 - F(1, 4)) * F(3, 2)
    # a schedule (keras): theta_2 differs by (lr_2 - lr_1)*mu*G_1
    torch = exact_trajectory(w0, b0, data, _torch(momentum=0.5))
    keras = exact_trajectory(w0, b0, data, Options(momentum=0.5, convention="keras"))
    assert torch[0]["w_new"] == keras[0]["w_new"]
    assert keras[1]["w_new"] - torch[1]["w_new"] == (F(1, 4) - F(1, 8)) * F(1, 2) * G1w
    # decoupled decay (keras), a constant lr: theta_1 equal, torch's theta_2 = keras's -
    # lr*mu*wd*theta_0
    const = [(x, t, 0.125) for x, t, _ in data]
    torch = exact_trajectory(w0, b0, const, _torch(momentum=0.5, weight_decay=0.25))
    keras = exact_trajectory(w0, b0, const, Options(momentum=0.5, weight_decay=0.25,
                                                    convention="keras"))
    assert torch[0]["w_new"] == keras[0]["w_new"] and torch[0]["b_new"] == keras[0]["b_new"]
    assert torch[1]["w_new"] == keras[1]["w_new"] - F(1, 8) * F(1, 2) * F(1, 4) * w0
    assert torch[1]["b_new"] == keras[1]["b_new"] - F(1, 8) * F(1, 2) * F(1, 4) * b0
    # without momentum decoupled decay is torch's, even with a schedule
    assert exact_trajectory(w0, b0, data, _torch(weight_decay=0.25)) == exact_trajectory(
        w0, b0, data, Options(weight_decay=0.25, convention="keras"))
    # the decay after the trace (optax): buffers differ from step 1, theta_2 by
    # lr_2*mu*wd*theta_0
    torch = exact_trajectory(w0, b0, data, _torch(momentum=0.5, weight_decay=0.25))
    after = exact_trajectory(w0, b0, data, Options(momentum=0.5, weight_decay=0.25,
                                                   convention="optax-decay-after"))
    assert after[0]["buf_w"] == G1w and torch[0]["buf_w"] == G1w + F(1, 4) * w0
    assert torch[0]["w_new"] == after[0]["w_new"]
    assert torch[1]["w_new"] == after[1]["w_new"] - F(1, 4) * F(1, 2) * F(1, 4) * w0
    # dampening: torch's theta_2 differs from optax's by lr_2*tau*g_2
    damped = exact_trajectory(w0, b0, data, _torch(momentum=0.5, dampening=0.25))
    optax = exact_trajectory(w0, b0, data, Options(momentum=0.5, convention="optax"))
    G2w = damped[1]["dL_dw"]
    assert damped[1]["w_new"] - optax[1]["w_new"] == F(1, 4) * F(1, 4) * G2w


def test_the_domain_of_each_convention():
    for convention in OTHERS:
        for bad in (dict(dampening=0.25, momentum=0.5), dict(maximize=True)):
            with pytest.raises(ValueError, match=f"{convention} convention has no"):
                Options(convention=convention, **bad)
        Options(momentum=0.0, nesterov=True, convention=convention)  # (Nesterov is ignored)
    with pytest.raises(ValueError, match="between"):
        Options(momentum=1.5, convention="keras")
    Options(momentum=1.0, convention="keras")
    with pytest.raises(ValueError, match="unknown convention"):
        Options(convention="jax")
    with pytest.raises(ValueError, match="torch convention only"):
        sgd_bounds("float32", State(1.0, 0.5), 1.0, 1.0, 0.25,
                   Options(momentum=0.5, convention="keras", buffer_format="bfloat16"))


def test_no_buffer_is_the_zero_state_with_its_zero_signs():
    """keras: v_1 = (+0)*mu - G*lr, +0 where G*lr is +0 or -0; optax: t_1 = G + mu*(+0), +0
    where G = -0, while torch copies G_1 and keeps -0 (8.6)."""
    f = "float32"
    state = State(-0.0, -0.0)  # x = 1, t = 0: y = -0 + -0 = -0, r = -0 - 0 = -0: G = -0
    for convention in ("optax", "optax-decay-after", "keras"):
        values = sgd_evaluations(f, state, 1.0, 0.0, 0.25,
                                 Options(momentum=0.5, convention=convention))
        for v in values.values():
            assert v["buf_b"] == 0 and math.copysign(1, v["buf_b"]) == 1, convention
    torch = sgd_evaluations(f, state, 1.0, 0.0, 0.25, Options(momentum=0.5))
    assert all(math.copysign(1, v["buf_b"]) == -1 for v in torch.values())


def _value(rng: random.Random, fmt, lo: int = -6, hi: int = 6) -> float:
    v = rng.uniform(0.5, 1.0) * 2.0 ** rng.randint(lo, hi) * rng.choice((-1, 1))
    return fmt.round(Fraction(v))


def _step(rng: random.Random, fmt, options: Options, regime: str):
    first = not options.buffered or rng.random() < 0.3
    if regime == "tiny":
        w, b, t = (_value(rng, fmt, fmt.emin - 2, fmt.emin + 4) for _ in range(3))
        x, lr = _value(rng, fmt, -2, 2), abs(_value(rng, fmt, -4, 0))
        bufs = [_value(rng, fmt, fmt.emin - 2, fmt.emin + 4) for _ in range(2)]
    else:
        w, b, x, t = (_value(rng, fmt) for _ in range(4))
        lr = abs(_value(rng, fmt, -10, -1))
        bufs = [_value(rng, fmt) for _ in range(2)]
        if regime == "cancel":
            t = fmt.round(to_fraction(fmt.round(F(w) * F(x))) + F(b))
    return State(w, b, *([None, None] if first else bufs)), x, t, lr


def _sample_options(rng: random.Random, fmt, convention: str) -> Options:
    top = 0 if convention == "keras" else 1
    mu = rng.choice((0.0, abs(_value(rng, fmt, -3, 0)), 1.0, abs(_value(rng, fmt, 0, top))))
    return Options(momentum=min(mu, 1.0) if convention == "keras" else mu,
                   nesterov=rng.random() < 0.4, convention=convention,
                   weight_decay=rng.choice((0.0, abs(_value(rng, fmt, -6, -1)))))


@pytest.mark.parametrize("convention", OTHERS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_legal_evaluation_is_within_its_bound(fmt, convention):
    """Soundness on a sample (thousands of steps per format: ``test_optim_chain``'s batch
    campaign and ``neuronspec soundness --runs --convention``), and tightness: the bound is
    reached within a factor 4, so that a quartered bound is caught (the next test)."""
    rng = random.Random(zlib.crc32(f"{fmt}-{convention}".encode()))  # (hash() of a str
    # changes from run to run)
    f = get_format(fmt)
    worst: dict = {}
    judged = 0
    for i in range(24):
        options = _sample_options(rng, f, convention)
        state, x, t, lr = _step(rng, f, options, ("moderate", "cancel", "tiny")[i % 3])
        values, violations, _, first = judge_legal_values(f, state, x, t, lr, options, worst)
        assert violations == 0, first
        judged += values
    assert judged > 100
    for q in ("w_new", "b_new", "buf_w", "buf_b"):
        assert worst[q] > 0.25, (q, worst[q])


def test_a_quartered_bound_is_caught(monkeypatch):
    rng = random.Random(5)
    f = get_format("float16")
    for convention in OTHERS:
        worst: dict = {}
        caught = 0
        real = sgd_bounds
        monkeypatch.setattr("neuronspec.runs.run_soundness.sgd_bounds",
                            lambda *a, **k: {q: b / 4 if isinstance(b, Fraction) else b
                                             for q, b in real(*a, **k).items()})
        for i in range(12):
            options = Options(momentum=0.875, weight_decay=0.0625, nesterov=i % 2 == 1,
                              convention=convention)
            state, x, t, lr = _step(rng, f, options, "moderate")
            caught += judge_legal_values(f, state, x, t, lr, options, worst)[1]
        assert caught > 0, convention


@pytest.mark.parametrize("convention,bug", [("keras", "coupled decay"),
                                            ("optax", "dampened trace"),
                                            ("optax-decay-after", "decay before")])
def test_a_wrong_form_fails_at_its_step_and_quantity(convention, bug):
    """A run written with another convention's form, judged under the declared one, fails;
    the right form passes (the exact values: every step exact in float64)."""
    options = Options(momentum=0.5, weight_decay=0.25, convention=convention)
    w0, b0, data = 0.75, -0.5, [(1.5, 0.25, 0.125), (-0.75, 1.0, 0.25), (0.5, 0.5, 0.125)]
    right = framework_algorithm(convention, w0, b0, data, F(1, 2), False, F(1, 4))
    assert judge_run("float64", w0, b0, data, options, _floats(right)).ok
    if bug == "decay before":
        wrong = framework_algorithm("optax", w0, b0, data, F(1, 2), False, F(1, 4))
    else:
        wrong = framework_algorithm(convention, w0, b0, data, F(1, 2), False, F(1, 4), bug)
    k, j = judge_run("float64", w0, b0, data, options, _floats(wrong)).first_failure()
    # coupled decay: theta_1 is equal (8.6), v_1 = -lr*(G + wd*theta) is not; a dampened
    # trace halves t_1 and the step; the decay before the trace enters t_1
    assert (k, j.quantity) == {"keras": (1, "buf_w"), "optax": (1, "w_new"),
                               "optax-decay-after": (1, "buf_w")}[convention]


def _floats(steps):
    return [{q: None if v is None else float(v) for q, v in s.items()} for s in steps]


def test_velocity_reported_as_torch_buffer_fails_at_step_1():
    w0, b0, data = 0.75, -0.5, [(1.5, 0.25, 0.125), (-0.75, 1.0, 0.25)]
    keras = framework_algorithm("keras", w0, b0, data, F(1, 2))
    verdict = judge_run("float64", w0, b0, data, Options(momentum=0.5), _floats(keras))
    k, j = verdict.first_failure()
    assert k == 1 and j.quantity == "buf_w"


def test_evaluations_are_named_by_their_own_operations():
    names = [e.name for e in run_evaluations("float32", Options(
        momentum=0.5, nesterov=True, weight_decay=0.25, convention="keras")).evaluations]
    assert any("momentum-fused-lr" in n for n in names)
    assert any("nesterov-fused-mu" in n for n in names) and any("decay-fused" in n for n in names)
    assert not any("update-fused" in n for n in names)  # (theta + v: no product to fuse)
    plain = [e.name for e in run_evaluations("float32", Options(convention="keras")).evaluations]
    assert any("update-fused" in n for n in plain)


@pytest.mark.slow
@pytest.mark.parametrize("convention", OTHERS)
def test_thousands_of_steps_per_format_are_within_their_bounds(convention):
    """The batch campaign of ``neuronspec soundness --runs`` (every distinct legal value of
    each step judged) on 2,000 steps per format of the convention's set with every option;
    the recorded 10^6 per format and set are in spec/tolerances.md 2.8."""
    from neuronspec.cases.options import default_sets
    from neuronspec.runs import run_soundness

    report = run_soundness.soundness_runs_report(list(FORMATS), 2000, seed=11,
                                                 sets=[default_sets(convention)[-1]],
                                                 convention=convention)
    for fmt, sets in report["formats"].items():
        (r,) = sets.values()
        assert r["cases"] == 2000 and r["violations"] == 0, (fmt, r["first"])
        assert min(r["worst"][q] for q in ("w_new", "b_new", "buf_w", "buf_b")) > 0.5, fmt
