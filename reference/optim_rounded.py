"""The legal evaluations of one step of a run (spec/neuron.md 8.3).

An evaluation of a step with options is a plain-step evaluation (``rounded.admitted``: its
forward, square, gradient and work) that gives the gradients, followed by the optimiser's nodes
(``optim.NODES``, as ``optim.plan`` keeps them) with a choice of:

- per fusion group (``decay``, ``momentum``, ``nesterov``, ``update``): two roundings or one;
  for ``momentum`` either product may be the fused one;
- the value of ``c = 1 - tau``: one of ``optim_bounds.rounded_constants`` (torch's is the
  last: through binary64, float32 and the format);
- the momentum of ``mu*buf`` in a buffer format that does not hold it: as given, or rounded
  to the buffer format (``optim_bounds.buffer_momenta``);
- under hyper-binary64, the value of each binary64 constant each node uses
  (``optim_bounds.node_constants``: ``wd=``, ``mu_buffer=``, ``mu_nesterov=`` in the names);
- under lr-binary64, the roundings of ``lr`` before ``lq`` (``optim_bounds.lr_paths``:
  ``lr=float32-float16`` in the names; the value differs from step to step);
- the work of the plain evaluation: the format, each operation through the wider format, or
  kept in the wider format and rounded when stored (the buffer is stored; the direction may use
  the unrounded one, as torch's fused CPU kernel does); and its flush-to-zero (under ftz: the
  optimiser's inputs read as zero where subnormal in the format of the node using them, its
  results flushed).

Each is computed exactly and rounded as IEEE 754 says (``rounded.fl_*``).  Their results are
the step's legal values: the exact level of a run's verdict, and what the bounded level needs
where IEEE 754 fixes more than a magnitude (an overflow's result, the sign of a zero).

The evaluations and their names are listed once (:func:`run_evaluations`), and the optimiser's
nodes are evaluated once (:func:`parameter_evaluation`), against an arithmetic: here
:class:`RoundedWork` (``rounded.fl_*`` on Python values), in ``reference.batch.optim_legal``
the same operations on numpy arrays of steps.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from .formats import Format, get_format, to_fraction
from .legal import Legal, from_results
from .model import Model
from .optim import Options, State, resolve_alias, plan
from .optim_bounds import (RUN_QUANTITIES, buffer_format, buffer_momenta,
                           check_run_model, holds, lr_paths, node_constants, rounded_constants)
from .rounded import (Rounder, Variant, work_arithmetic, admitted, evaluate_variants, fl_add,
                      fl_fma, fl_mul)

__all__ = ["sgd_evaluations", "sgd_legal", "RunEvaluation", "RunEvaluations",
           "run_evaluations", "buffer_work", "parameter_evaluation", "RoundedWork",
           "rounded_work"]

def _groups(options: Options, first: bool) -> dict[str, tuple]:
    """The fusion groups a step evaluates, in order, each with its choices: False (two
    roundings), or the label of the product fused (True where the sum has one product operand;
    torch's momentum sum: ``c``, ``mu``).  A group whose sum is not in the plan has none."""
    keep, _ = plan(options, first)
    out: dict[str, tuple] = {}
    for node in keep:
        if node.fuse:
            if node.fusion in out:
                raise AssertionError(f"two sums of fusion group {node.fusion} in one step")
            out[node.fusion] = (False,) + tuple(label for label, _ in node.fuse)
    return out


@dataclass(frozen=True)
class RunEvaluation:
    """One legal evaluation of a step of a run: its name, the plain step's evaluation that
    gives the gradients, and the optimiser's choices (``fused``: per fusion group, False or
    what is fused; ``c``: the value of 1 - dampening; ``mu_buffer``: the momentum of
    ``mu*buf``; under hyper-binary64 ``wd`` and ``mu``: the weight decay of ``dq`` and the
    momentum of the Nesterov ``nm``, None: as given; ``lr``: the formats ``lr`` is rounded
    to, in order, before ``lq``)."""

    name: str
    variant: Variant
    fused: Mapping[str, Any]
    c: float
    mu_buffer: float
    wd: Optional[float] = None
    mu: Optional[float] = None
    lr: tuple[Format, ...] = ()


@dataclass(frozen=True)
class RunEvaluations:
    """The legal evaluations of every step of a run with given options, in order (their names
    do not depend on the step: each is named with the groups and constants of every step)."""

    fmt: Format
    buffer: Format  # the buffer format
    variants: tuple[Variant, ...]  # the plain step's evaluations (the update: the optimiser's)
    evaluations: tuple[RunEvaluation, ...]
    named_c: bool  # whether the names carry c (a constant with more than one value)
    named_mu: bool  # whether they carry the momentum of mu*buf


def run_evaluations(fmt: "Format | str", options: Options, model: "Model | str" = "ieee"
                    ) -> RunEvaluations:
    """Every legal evaluation of a step of a run with ``options``, named and in order."""
    fmt = get_format(fmt)
    return _run_evaluations(fmt, options, check_run_model(model, fmt, options))


@functools.lru_cache(maxsize=64)
def _run_evaluations(fmt: Format, options: Options, model: Model) -> RunEvaluations:
    variants = [v for v in admitted(fmt, model) if not v.update_fused]  # (the update: below)
    # every step's evaluations are named with the groups of every step of the run (a first step
    # has no momentum sum), so that one evaluation can be followed over a run
    groups = _groups(options, False)
    c_exact = 1 - to_fraction(float(options.dampening))
    # (and with their c, which a first step does not use either)
    named_c = options.buffered and c_exact != 1
    B = buffer_format(fmt, options)
    constants = [float(c) for c in rounded_constants(fmt, c_exact, B if B != fmt else None)] \
        if named_c else [1.0]
    # the momentum of mu*buf in the buffer format: as given, or rounded there (named where
    # the two differ; a first step has no such product)
    hyper = node_constants(fmt, options, model)  # (hyper-binary64: each node its own)
    momenta = [float(m) for m in hyper.get("mu_buffer", buffer_momenta(fmt, options))] or [0.0]
    named_mu = len(momenta) > 1
    # the weight decay of dq and the Nesterov momentum of nm (None: as given)
    wds, mus = ([float(m) for m in hyper.get(k, ())] or [None] for k in ("wd", "mu"))
    paths = lr_paths(fmt, model)  # (lr-binary64: the roundings of lr in lq)
    out = []
    for v in variants:
        for choice in itertools.product(*groups.values(), constants, momenta, wds, mus,
                                        paths):
            fused = dict(zip(groups, choice[:-5]))
            c, mu_buffer, wd, mu, lr = choice[-5:]
            name = "+".join([v.name] + [f"{g}-fused" + (f"-{f}" if isinstance(f, str) else "")
                                       for g, f in fused.items() if f]
                            + ([f"c={c.hex()}"] if named_c else [])
                            + ([f"mu_buffer={mu_buffer.hex()}"] if named_mu else [])
                            + ([f"wd={wd.hex()}"] if len(wds) > 1 else [])
                            + ([f"mu_nesterov={mu.hex()}"] if len(mus) > 1 else [])
                            + ([f"lr={'-'.join(f.name for f in lr) or 'binary64'}"]
                               if len(paths) > 1 else []))
            out.append(RunEvaluation(name, v, fused, c, mu_buffer, wd, mu, lr))
    return RunEvaluations(fmt, B, tuple(variants), tuple(out), named_c, named_mu)


def buffer_work(model: Model, buffer: Format, work: str) -> str:
    """The work of the buffer's nodes in an evaluation of work ``work``: the same kind of work
    where the model admits it in the buffer format, else the buffer format's own."""
    return work if model.wide(buffer) else "format"


def sgd_evaluations(fmt: "Format | str", state: State, x: float, t: float, lr: float,
                    options: Options, model: "Model | str" = "ieee"
                    ) -> dict[str, dict[str, Optional[float]]]:
    """Every legal evaluation of one step of a run from ``state``, by name: its values of
    :data:`optim_bounds.RUN_QUANTITIES` (a buffer None where the options keep none)."""
    fmt = get_format(fmt)
    model = check_run_model(model, fmt, options)
    run = _run_evaluations(fmt, options, model)
    state = options.rules.start(state, options)  # (keras, optax: no buffer is the zero state)
    w, b = float(state.w), float(state.b)
    plain = evaluate_variants(fmt, w, b, float(x), float(t), float(lr), run.variants)
    first = state.buf_w is None
    used = set(_groups(options, first))
    uses_c = run.named_c and not first
    B, copies = run.buffer, holds(run.buffer, fmt)
    keys = {v.name: (v.work, v.ftz) + tuple(_bits(plain[v.name][q])
                                      for q in ("y", "loss", "dL_dw", "dL_db"))
            for v in run.variants}
    rates = {path: _rounded_lr(float(lr), path) for path in lr_paths(fmt, model)}
    out: dict[str, dict[str, Optional[float]]] = {}
    seen: dict[tuple, str] = {}
    for e in run.evaluations:
        v = e.variant
        dup = keys[v.name] + tuple(sorted(((g, f) for g, f in e.fused.items() if g in used),
                                          key=str)) \
            + ((e.c,) if uses_c else ()) + ((e.mu_buffer,) if run.named_mu and not first else ()) \
            + (e.wd, e.mu, rates[e.lr])
        if dup in seen:  # the same gradients and choices as an earlier evaluation
            out[e.name] = out[seen[dup]]
            continue
        seen[dup] = e.name
        base = plain[v.name]
        values: dict[str, Optional[float]] = {q: base[q] for q in ("y", "loss", "dL_dw",
                                                                    "dL_db", "dL_dy")}
        # the buffer's nodes in the buffer format, in the same kind of work where the model
        # admits it there
        A = rounded_work(fmt, v.work, v.ftz)
        Ab = rounded_work(B, buffer_work(model, B, v.work), v.ftz)
        # (ftz: the inputs read as zero where subnormal in their node's format)
        daz, dazb = (Rounder(f, flush=v.ftz).flush_value for f in (fmt, B))
        wd, mu = (float(getattr(options, k)) if given is None else given
                  for k, given in (("weight_decay", e.wd), ("momentum", e.mu)))
        for theta, grad in (("w", "dL_dw"), ("b", "dL_db")):
            buf = state.buffer(theta)
            new, buf = parameter_evaluation(A, Ab, daz(float(getattr(state, theta))), base[grad],
                                            None if buf is None else dazb(float(buf)),
                                            daz(rates[e.lr]), options, e.fused, dazb(e.c),
                                            dazb(e.mu_buffer), first, copies, wd=daz(wd),
                                            mu=daz(mu))
            values[f"{theta}_new"], values[f"buf_{theta}"] = new, buf
        out[e.name] = values
    return out


def _rounded_lr(lr: float, path: tuple[Format, ...]) -> float:
    """``lr`` rounded to each format of ``path`` in turn (an evaluation's lr in lq)."""
    for f in path:
        lr = f.round(to_fraction(lr))
    return lr


def _bits(v: float) -> tuple:
    return (v, math.copysign(1.0, v)) if v == v else ("nan",)


class RoundedWork:
    """The optimiser's operations on Python values in one kind of work
    (``rounded.work_arithmetic``): each computed exactly and rounded as IEEE 754 says."""

    def __init__(self, fmt: Format, work: str, ftz: bool = False) -> None:
        self.ops, _, self._store = work_arithmetic(fmt, work, ftz)

    def mul(self, a, b):
        return fl_mul(self.ops, a, b)

    def add(self, a, b):
        return fl_add(self.ops, a, b)

    def fma(self, a, b, c):
        return fl_fma(self.ops, a, b, c)

    @staticmethod
    def neg(a):
        return -a

    def store(self, value):
        return self._store(value)


@functools.lru_cache(maxsize=None)
def rounded_work(fmt: Format, work: str, ftz: bool = False) -> RoundedWork:
    """The :class:`RoundedWork` of ``fmt`` and ``work`` (``ftz``: results flushed)."""
    return RoundedWork(fmt, work, ftz)


def parameter_evaluation(A, Ab, theta, G, buf, lr, options: Options,
                         fused: Mapping[str, Any], c, mu_buffer, first: bool,
                         copies: bool, *, wd=None, mu=None) -> tuple[Any, Any]:
    """(theta_new, the stored state or None) of one parameter in one evaluation, from its
    value ``theta``, gradient ``G``, buffer ``buf`` (None on a first step) and ``lr``, by the
    nodes of the declared convention (``optim.Convention``).

    ``A``: the arithmetic of the parameter's nodes, ``Ab``: of the buffer's nodes
    (``Convention.buffer_nodes``); each has ``mul``, ``add`` and ``fma`` (one rounding of
    a*b, a+b, a*b+c), ``neg`` (exact) and ``store`` (a result as stored): :class:`RoundedWork`
    on Python values, or the same on arrays of steps (``batch.optim_legal``).  ``fused``, ``c``,
    ``mu_buffer``, ``wd``, ``mu``: the evaluation's choices (:class:`RunEvaluation`; ``wd``,
    ``mu`` None: the options' values); ``copies``: whether a copy into the buffer is exact.  A
    buffer None under a convention whose state starts at zero (keras, optax) is that zero,
    ``+0``: the caller passes it."""
    rules = options.rules
    keep, alias = rules.plan(options, first)
    wd = float(options.weight_decay) if wd is None else wd
    mu = float(options.momentum) if mu is None else mu
    values: dict[str, Any] = {"theta": theta, "G": G, "lr": lr, "wd": wd, "mu": mu, "c": c,
                              "buf": buf}
    products = {n.name: n for n in keep if n.op == "mul"}
    # per product node, whether some consumer uses it rounded (else it is only fused)
    chosen = {n.name: dict(n.fuse).get(fused.get(n.fusion)) for n in keep if n.fuse}
    needed = {name: any(resolve_alias(a, alias) == name and chosen.get(n.name) != name
                        for n in keep for a in n.args) for name in products}

    def operands(node) -> list:
        # a node in the buffer format uses the momentum as that format's kernel may see it
        return [mu_buffer if x == "mu" and node.name in rules.buffer_nodes
                else values.get(resolve_alias(x, alias)) for x in node.args]

    for node in keep:
        W = Ab if node.name in rules.buffer_nodes else A
        a = operands(node)
        if node.op == "sign":
            values[node.name] = A.neg(a[0]) if options.maximize else a[0]
        elif node.op == "copy":  # into the buffer: rounded if narrower
            values[node.name] = a[0] if copies else Ab.mul(a[0], 1.0)
        elif node.op == "mul":
            if needed[node.name]:  # (else its sum is fused with it: never rounded alone)
                values[node.name] = W.mul(a[0], a[1])
        elif chosen.get(node.name):  # a sum fused with its product operand: one rounding
            product = chosen[node.name]
            i = [resolve_alias(x, alias) for x in node.args].index(product)
            p, q = operands(products[product])
            other = a[1 - i]
            if node.op == "sub" and i == 1:  # other - p*q
                p = W.neg(p)
            elif node.op == "sub":  # p*q - other
                other = W.neg(other)
            values[node.name] = W.fma(p, q, other)
        elif node.op == "add":
            values[node.name] = W.add(a[0], a[1])
        elif node.op == "sub":
            values[node.name] = W.add(a[0], W.neg(a[1]))
        else:
            raise AssertionError(f"no evaluation for {node}")
    stored = Ab.store(values[rules.state]) if options.buffered else None
    return A.store(values["theta_new"]), stored


def sgd_legal(fmt: "Format | str", state: State, x: float, t: float, lr: float,
              options: Options, model: "Model | str" = "ieee") -> Legal:
    """The legal values of one step of a run (``reference.legal.Legal``)."""
    fmt = get_format(fmt)
    model = check_run_model(model, fmt, options)
    results = sgd_evaluations(fmt, state, x, t, lr, options, model)
    quantities = [q for q in RUN_QUANTITIES if options.buffered or not q.startswith("buf_")]
    return from_results(fmt, model, (state, x, t, lr, options), results, quantities)
