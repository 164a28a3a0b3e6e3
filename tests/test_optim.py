"""SGD with options over many steps (spec/neuron.md section 8): the exact reference against the
algorithm written out in Fractions, the conventions' agreements that section 8.6 proves, and
torch.optim.SGD itself on runs where every operation is exact in float64, so that torch's values
must equal the exact ones bit for bit (no tolerance); the named bugs of section 8.7 fail there."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest

from reference.exact import exact_step
from reference.formats import to_fraction
from reference.optim import (NODES, Options, State, exact_sgd_nodes, exact_sgd_step,
                             exact_trajectory, plan)

F = Fraction


def _grads(w, b, x, t):
    r = w * x + b - t
    return r * x, r, r


def torch_algorithm(w0, b0, data, mu=F(0), tau=F(0), nesterov=False, wd=F(0), maximize=False,
                    bug=""):
    """torch 2.13.0's _single_tensor_sgd, line by line, in Fractions (section 8.2); ``bug``
    names one of section 8.7's wrong forms instead."""
    theta = {"w": F(w0), "b": F(b0)}
    buf: dict = {}
    steps = []
    for x, t, lr in data:
        x, t, lr = F(x), F(t), F(lr)
        gw, gb, r = _grads(theta["w"], theta["b"], x, t)
        out = {"y": theta["w"] * x + theta["b"], "loss": r * r / 2, "dL_dw": gw, "dL_db": gb}
        for name, G in (("w", gw), ("b", gb)):
            g = -G if maximize and bug != "maximize at the update" else G
            if wd and bug != "weight decay after momentum":
                g = g + wd * theta[name]
            if mu:
                if name not in buf:
                    buf[name] = g * (1 - tau) if bug == "dampening on the first step" else g
                else:
                    old = buf[name]
                    buf[name] = mu * buf[name] + (1 - tau) * g
                if nesterov:
                    g = g + mu * (old if bug == "nesterov with the old buffer" and name in buf
                                  and len(steps) else buf[name])
                else:
                    g = buf[name]
            if wd and bug == "weight decay after momentum":
                g = g + wd * theta[name]
            step = -lr * g if maximize and bug == "maximize at the update" else lr * g
            theta[name] = theta[name] - step
        out.update(w_new=theta["w"], b_new=theta["b"], buf_w=buf.get("w"), buf_b=buf.get("b"))
        steps.append(out)
    return steps


def _options(rng: random.Random) -> Options:
    mu = rng.choice([0.0, 0.5, 0.75, 0.25, 1.0])
    nesterov = mu > 0 and rng.random() < 0.4
    tau = 0.0 if nesterov else rng.choice([0.0, 0.5, 0.25, -0.5])
    return Options(momentum=mu, dampening=tau, nesterov=nesterov,
                   weight_decay=rng.choice([0.0, 0.125, 0.25]), maximize=rng.random() < 0.3)


def _run(rng: random.Random, k: int, lr=None):
    """Small dyadic values: every operation of a few steps is exact in binary64."""
    def v():
        return rng.randint(-8, 8) / 4
    data = [(v(), v(), lr if lr is not None else rng.choice([0.25, 0.125, 0.5]))
            for _ in range(k)]
    return v(), v(), data


def _fractions(options: Options) -> dict:
    return dict(mu=F(options.momentum), tau=F(options.dampening), nesterov=options.nesterov,
                wd=F(options.weight_decay), maximize=options.maximize)


def test_without_options_a_step_is_the_plain_step():
    rng = random.Random(1)
    for _ in range(200):
        w, b, x, t, lr = (rng.uniform(-4, 4) for _ in range(5))
        step = exact_sgd_step(State(w, b), x, t, lr, Options())
        plain = exact_step(w, b, x, t, lr).as_fractions()
        for q in ("y", "loss", "dL_dw", "dL_db", "w_new", "b_new"):
            assert step[q] == plain[q]
        assert step["buf_w"] is None and step["buf_b"] is None


def test_the_exact_trajectory_is_torchs_algorithm_in_fractions():
    rng = random.Random(2)
    for _ in range(300):
        options = _options(rng)
        w0, b0, data = _run(rng, rng.randint(1, 6))
        data = [(rng.uniform(-3, 3), rng.uniform(-3, 3), lr) for _, _, lr in data]  # any bits
        assert exact_trajectory(w0, b0, data, options) == \
            torch_algorithm(w0, b0, data, **_fractions(options)), options


def test_each_step_is_judged_from_the_given_state():
    """A step from a reported state is the exact step from that state, whatever came before."""
    options = Options(momentum=0.5, dampening=0.25, weight_decay=0.125)
    first = exact_sgd_step(State(1.0, 0.5), 2.0, 1.0, 0.25, options)
    assert first["buf_w"] == first["dL_dw"] + F(1, 8)  # no dampening on the first step
    reported = State(0.75, 0.5, 0.5, -0.25)  # (not the exact first step's)
    second = exact_sgd_step(reported, 2.0, 1.0, 0.25, options)
    gw = (F(3, 4) * 2 + F(1, 2) - 1) * 2 + F(1, 8) * F(3, 4)
    assert second["buf_w"] == F(1, 2) * F(1, 2) + F(3, 4) * gw
    assert second["w_new"] == F(3, 4) - F(1, 4) * second["buf_w"]
    with pytest.raises(ValueError, match="neither"):
        exact_sgd_step(State(1.0, 0.5, 0.5, None), 2.0, 1.0, 0.25, options)
    with pytest.raises(ValueError, match="keep none"):
        exact_sgd_step(State(1.0, 0.5, 0.5, 0.5), 2.0, 1.0, 0.25, Options())


def test_torch_rejects_what_the_domain_leaves_out():
    for bad in (dict(momentum=-0.5), dict(weight_decay=-1.0), dict(nesterov=True),
                dict(momentum=0.5, dampening=0.5, nesterov=True)):
        with pytest.raises(ValueError):
            Options(**bad)


def test_the_plan_leaves_out_the_nodes_of_options_that_are_off():
    names = {n.name for n in NODES}
    keep, alias = plan(Options(), first=True)
    assert [n.name for n in keep] == ["gs", "lq", "theta_new"] and alias == {"gd": "gs",
                                                                               "dn": "gd"}
    keep, alias = plan(Options(momentum=0.5, nesterov=True, weight_decay=0.25), first=False)
    assert [n.name for n in keep] == ["gs", "dq", "gd", "mb", "cg", "nb", "nm", "dn", "lq",
                                      "theta_new"] and not alias
    keep, _ = plan(Options(momentum=0.5), first=True)
    assert [(n.name, n.op) for n in keep][:2] == [("gs", "sign"), ("nb", "copy")]
    assert {n.name for n in keep} <= names


# --- the conventions (section 8.6) ------------------------------------------------------------

def _form(w0, b0, data, update):
    """A published form run exactly: ``update(p, state, g, lr) -> (p, state)`` per parameter,
    each state starting at 0; per step (w, b, state of w, state of b)."""
    theta, state = {"w": F(w0), "b": F(b0)}, {"w": F(0), "b": F(0)}
    out = []
    for x, t, lr in data:
        x, t, lr = F(x), F(t), F(lr)
        gw, gb, _ = _grads(theta["w"], theta["b"], x, t)
        for name, g in (("w", gw), ("b", gb)):
            theta[name], state[name] = update(theta[name], state[name], g, lr)
        out.append((theta["w"], theta["b"], state["w"], state["b"]))
    return out


def keras(w0, b0, data, mu, nesterov=False):
    """Keras's SGD: v = mu*v - lr*g; p += v (Nesterov: p += mu*v - lr*g); v starts at 0."""
    def update(p, v, g, lr):
        v = mu * v - lr * g
        return p + (mu * v - lr * g if nesterov else v), v
    return _form(w0, b0, data, update)


def optax(w0, b0, data, decay, nesterov=False):
    """optax.sgd: trace t = g + decay*t (from 0); updates -lr*(g + decay*t if Nesterov else t)."""
    def update(p, tr, g, lr):
        tr = g + decay * tr
        return p - lr * (g + decay * tr if nesterov else tr), tr
    return _form(w0, b0, data, update)


@pytest.mark.parametrize("nesterov", [False, True])
def test_keras_agrees_exactly_with_constant_lr_and_differs_with_a_schedule(nesterov):
    rng = random.Random(3)
    differ = 0
    for _ in range(100):
        w0, b0, data = _run(rng, 5, lr=0.25)
        options = Options(momentum=0.75, nesterov=nesterov)
        ours = exact_trajectory(w0, b0, data, options)
        theirs = keras(w0, b0, data, F(3, 4), nesterov)
        for s, (w, b, vw, vb) in zip(ours, theirs):
            assert (s["w_new"], s["b_new"]) == (w, b)
            assert (vw, vb) == (-F(1, 4) * s["buf_w"], -F(1, 4) * s["buf_b"])  # v = -lr*buf
        scheduled = [(x, t, lr * (i + 1)) for i, (x, t, lr) in enumerate(data)]
        ours = exact_trajectory(w0, b0, scheduled, options)
        theirs = keras(w0, b0, scheduled, F(3, 4), nesterov)
        differ += any((s["w_new"], s["b_new"]) != k[:2] for s, k in zip(ours, theirs))
    assert differ > 50


def test_optax_trace_is_the_buffer_for_any_schedule_without_dampening():
    rng = random.Random(4)
    for nesterov in (False, True):
        for _ in range(100):
            w0, b0, data = _run(rng, 5)
            ours = exact_trajectory(w0, b0, data, Options(momentum=0.5, nesterov=nesterov))
            for s, (w, b, tw, tb) in zip(ours, optax(w0, b0, data, F(1, 2), nesterov)):
                assert (s["w_new"], s["b_new"], s["buf_w"], s["buf_b"]) == (w, b, tw, tb)


# --- torch.optim.SGD itself, where float64 is exact ---------------------------------------------

def _torch_run(torch, w0, b0, data, options: Options, fresh=True):
    w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(b0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w, b], lr=data[0][2], momentum=options.momentum,
                          dampening=options.dampening, nesterov=options.nesterov,
                          weight_decay=options.weight_decay, maximize=options.maximize,
                          foreach=False)
    states, reports = [State(w0, b0)], []
    for x, t, lr in data:
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad()
        y = w * x + b
        loss = (y - t) ** 2 / 2
        loss.backward()
        report = {"y": y.item(), "loss": loss.item(), "dL_dw": w.grad.item(),
                  "dL_db": b.grad.item()}
        opt.step()
        bufs = [opt.state[p].get("momentum_buffer") for p in (w, b)]
        report.update(w_new=w.item(), b_new=b.item(),
                      buf_w=None if bufs[0] is None else bufs[0].item(),
                      buf_b=None if bufs[1] is None else bufs[1].item())
        reports.append(report)
        states.append(State(report["w_new"], report["b_new"], report["buf_w"],
                            report["buf_b"]))
    return states, reports


def _all_exact(state, x, t, lr, options) -> bool:
    """Whether every node of the step is a binary64 value: then every evaluation gives it."""
    nodes, params = exact_sgd_nodes(state, x, t, lr, options)
    values = list(nodes.values()) + [v for p in params.values() for v in p.values()]
    for v in values:
        q = to_fraction(v)
        if abs(q) > 2**1000 or F(float(q)) != q:
            return False
    return True


def test_torch_sgd_steps_are_the_exact_steps_from_its_own_state():
    """Every option, on runs where each step is exact in float64: torch's reported values are
    the exact step's from torch's own previous state, bit for bit."""
    torch = pytest.importorskip("torch")
    rng = random.Random(5)
    judged = 0
    for _ in range(150):
        options = _options(rng)
        w0, b0, data = _run(rng, 4)
        states, reports = _torch_run(torch, w0, b0, data, options)
        for state, report, (x, t, lr) in zip(states, reports, data):
            if not _all_exact(state, x, t, lr, options):
                break  # later steps start from a rounded state: no longer exact
            assert {q: v if v is None else F(v) for q, v in report.items()} == \
                exact_sgd_step(state, x, t, lr, options), (options, state, x, t, lr)
            judged += 1
    assert judged > 300


@pytest.mark.parametrize("bug", ["dampening on the first step", "nesterov with the old buffer",
                                 "weight decay after momentum", "maximize at the update"])
def test_each_named_bug_departs_from_torch(bug):
    """Section 8.7's bugs, written into the algorithm: on the same exact runs, each gives a
    value torch does not (a check built on the exact reference can fail)."""
    torch = pytest.importorskip("torch")
    rng = random.Random(6)
    options = {"dampening on the first step": Options(momentum=0.5, dampening=0.5),
               "nesterov with the old buffer": Options(momentum=0.5, nesterov=True),
               "weight decay after momentum": Options(momentum=0.5, weight_decay=0.25),
               "maximize at the update": Options(weight_decay=0.25, maximize=True)}[bug]
    caught = 0
    for _ in range(40):
        w0, b0, data = _run(rng, 3)
        states, reports = _torch_run(torch, w0, b0, data, options)
        if not all(_all_exact(s, x, t, lr, options) for s, (x, t, lr) in zip(states, data)):
            continue
        wrong = torch_algorithm(w0, b0, data, bug=bug, **_fractions(options))
        caught += any(F(r[q]) != s[q] for r, s in zip(reports, wrong)
                      for q in ("w_new", "b_new", "buf_w", "buf_b") if r[q] is not None)
    assert caught >= 5, caught
