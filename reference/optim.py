"""SGD with options over many steps (spec/neuron.md section 8): the optimiser's nodes described
once, as data, per convention (8.6), and their exact values.

A step of a run starts from a state ``(w, b, buf_w, buf_b)``: the plain step of
``reference.step`` gives each parameter's gradient ``G`` (``gw`` for w, ``g`` for b), and the
nodes of the declared convention turn it into the parameter's new value and state.  Under
``torch`` (the default), in the order of torch 2.13.0's ``_single_tensor_sgd``::

    gs = sigma*G;  gd = gs + wd*theta;  nb = gd (first step) | mu*buf + c*gd (c = 1 - tau)
    dn = gd + mu*nb (Nesterov) | nb (momentum) | gd;  theta_new = theta - lr*dn

Under ``keras`` the state is the velocity ``v = buf*mu - G*lr`` after the decoupled decay
``theta - theta*wd*lr``; under ``optax`` and ``optax-decay-after`` the trace ``G + mu*buf``, the
decay ``+ wd*theta`` before or after it (:data:`CONVENTIONS`).  Each convention is a table of
:class:`OptimNode` fed to the same machinery (exact values here, bounds in ``optim_bounds``,
legal evaluations in ``optim_rounded``).  Nodes of options that are off are left out and their
operand is passed on (:meth:`Convention.plan`).  Every value here is exact: the operations of
``reference.exact`` (mpmath, ``exact=True``) on the binary inputs, so that a step of a run is
judged against the exact step from the implementation's own reported state (section 8.4), and
:func:`exact_trajectory` is the run with no rounding anywhere (section 8.5).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Iterable, Mapping, Optional

import mpmath

from .dyadic import dyadic
from .exact import _EXACT, Binary, exact_nodes, to_mpf
from .formats import to_fraction
from .step import NODE_OF, REQUIRED

__all__ = ["Options", "State", "OptimNode", "Alias", "Convention", "CONVENTIONS",
           "CONVENTION_NAMES", "NODES", "KERAS_NODES", "OPTAX_NODES",
           "OPTAX_DECAY_AFTER_NODES", "PARAMETERS", "BUFFERS", "UPDATED",
           "STATE_QUANTITIES", "plan", "parameter_nodes",
           "resolve_alias", "MPMATH", "DYADIC", "exact_sgd_nodes",
           "exact_sgd_step", "exact_trajectory", "STEP_QUANTITIES"]

#: The parameters and the plain step's node that is each one's gradient.
PARAMETERS: dict[str, str] = {"w": "gw", "b": "g"}
#: What a step of a run reports (section 8.4): the plain step's quantities at its own (w, b),
#: then the state after it.
BUFFERS = tuple(f"buf_{theta}" for theta in PARAMETERS)
STEP_QUANTITIES = REQUIRED + BUFFERS
#: The quantities the optimiser computes (the others are the plain step's).
UPDATED = tuple(f"{theta}_new" for theta in PARAMETERS)
#: The state a step reports, which the next step starts from.
STATE_QUANTITIES = UPDATED + BUFFERS


#: The conventions of section 8.6: each its own exact recurrence and state (:data:`CONVENTIONS`).
CONVENTION_NAMES = ("torch", "keras", "optax", "optax-decay-after")


@dataclass(frozen=True)
class Options:
    """The constant options of a run (section 8.1), as binary values; ``lr`` is data of each
    step.  Combinations the declared convention rejects raise ``ValueError`` with its reason
    (torch's where torch has one; keras: 0 <= mu <= 1, no dampening, no maximize; optax: no
    dampening, no maximize)."""

    momentum: Binary = 0.0
    dampening: Binary = 0.0
    nesterov: bool = False
    weight_decay: Binary = 0.0
    maximize: bool = False
    #: the format the buffer is kept and computed in (None: the parameter format); the exact
    #: step does not depend on it, the bounds and the legal evaluations do (section 8.3)
    buffer_format: Optional[str] = None
    #: the declared convention (section 8.6): which recurrence, which state
    convention: str = "torch"

    def __post_init__(self) -> None:
        if self.convention not in CONVENTION_NAMES:
            raise ValueError(f"unknown convention {self.convention!r}; the conventions are "
                             f"{', '.join(CONVENTION_NAMES)}")
        for name in ("momentum", "dampening", "weight_decay"):
            value = getattr(self, name)
            if not math.isfinite(float(value)):
                raise ValueError(f"{name} = {value!r} is not finite")
        if float(self.momentum) < 0:
            raise ValueError(f"Invalid momentum value: {self.momentum} (it must be >= 0)")
        if float(self.weight_decay) < 0:
            raise ValueError(f"Invalid weight_decay value: {self.weight_decay} (it must be >= 0)")
        if self.convention == "torch":
            if self.nesterov and (float(self.momentum) <= 0 or float(self.dampening) != 0):
                raise ValueError("Nesterov momentum requires a momentum and zero dampening")
            return
        # keras and optax have no dampening and no maximize (section 8.6)
        for name in ("dampening", "maximize"):
            if getattr(self, name):
                raise ValueError(f"the {self.convention} convention has no {name} (spec/neuron.md "
                                 f"8.6)")
        if self.convention == "keras" and float(self.momentum) > 1:
            raise ValueError(f"`momentum` must be a float between [0, 1], not {self.momentum} "
                             f"(keras: spec/neuron.md 8.6)")

    @property
    def buffered(self) -> bool:
        """Whether the run keeps momentum buffers (mu != 0; either zero means none)."""
        return float(self.momentum) != 0

    @property
    def rules(self) -> "Convention":
        """The node table of the declared convention."""
        return CONVENTIONS[self.convention]


@dataclass(frozen=True)
class State:
    """The state between two steps: the parameters and their buffers (None: no buffer)."""

    w: Binary
    b: Binary
    buf_w: Optional[Binary] = None
    buf_b: Optional[Binary] = None

    def buffer(self, theta: str) -> Optional[Binary]:
        return self.buf_w if theta == "w" else self.buf_b


@dataclass(frozen=True)
class OptimNode:
    """One operation of the optimiser on one parameter: ``name = op(args)``; an argument is a
    node of this table, ``theta``, ``buf``, ``G`` (the gradient) or a constant (``wd``, ``mu``,
    ``c``, ``lr``).  ``code``: the framework's operation.  ``when``: the flags a step needs for
    the node (``wd``, ``mu``, ``nesterov``, ``first``; ``!flag``: the flag off).  ``fusion``:
    the group of a sum an implementation may fuse with a product operand, and ``fuse`` the
    choices, (label, product node) in order (section 8.3); label True where there is one."""

    name: str
    op: str
    args: tuple[str, ...]
    code: str
    fusion: str = ""
    when: tuple[str, ...] = ()
    fuse: tuple[tuple[Any, str], ...] = ()


@dataclass(frozen=True)
class Alias:
    """A node a step leaves out is ``target`` (its operand passed on) where ``when`` holds."""

    name: str
    target: str
    when: tuple[str, ...] = ()


@dataclass(frozen=True)
class Convention:
    """One convention of section 8.6 as data: its nodes (in evaluation order), the aliases of
    the nodes a step leaves out, the node whose value is the state kept (reported in buf_w,
    buf_b), the nodes computed in the buffer format, and whether "no buffer" with momentum is
    the zero state ``+0`` (keras, optax) rather than torch's first step."""

    name: str
    nodes: tuple[OptimNode, ...]
    aliases: tuple[Alias, ...]
    state: str
    buffer_nodes: tuple[str, ...]
    zero_state: bool

    def plan(self, options: Options, first: bool
             ) -> tuple[tuple[OptimNode, ...], dict[str, str]]:
        """The nodes one step of a parameter evaluates, and the aliases of those left out (a
        node of an option that is off is its operand: torch's ``gd = gs`` without weight
        decay, ...).  ``first``: the parameter has no buffer yet (torch's first step)."""
        keep, alias = _plan(self, float(options.weight_decay) != 0, options.buffered,
                            bool(options.nesterov), first and not self.zero_state)
        return keep, dict(alias)

    def start(self, state: State, options: Options) -> State:
        """The state a step computes from: "no buffer" with momentum is the zero state ``+0``
        under keras and optax (Keras's zeros, optax's ``zeros_like``: spec/protocol.md R2)."""
        if self.zero_state and options.buffered and state.buf_w is None and state.buf_b is None:
            return State(state.w, state.b, 0.0, 0.0)
        return state


@functools.lru_cache(maxsize=None)
def _plan(rules: Convention, wd: bool, mu: bool, nesterov: bool, first: bool
          ) -> tuple[tuple[OptimNode, ...], dict[str, str]]:
    """:meth:`Convention.plan` for the flags of a step (a step's nodes depend on nothing
    else; remembered: the plan is asked for at every step of every parameter)."""
    flags = {"wd": wd, "mu": mu, "nesterov": nesterov, "first": first}

    def holds(when: tuple[str, ...]) -> bool:
        return all(not flags[c[1:]] if c.startswith("!") else flags[c] for c in when)

    keep = tuple(n for n in rules.nodes if holds(n.when))
    kept = {n.name for n in keep}
    alias: dict[str, str] = {}
    for a in rules.aliases:
        if a.name not in kept and a.name not in alias and holds(a.when):
            alias[a.name] = a.target
    return keep, alias


#: torch 2.13.0's ``_single_tensor_sgd`` (section 8.3), in evaluation order.
NODES: tuple[OptimNode, ...] = (
    OptimNode("gs", "sign", ("G",), "grads[i] if not maximize else -grads[i]"),
    OptimNode("dq", "mul", ("wd", "theta"), "grad.add(param, alpha=weight_decay)", "decay",
              ("wd",)),
    OptimNode("gd", "add", ("gs", "dq"), "grad.add(param, alpha=weight_decay)", "decay",
              ("wd",), ((True, "dq"),)),
    OptimNode("nb", "copy", ("gd",), "buf = grad.detach().clone()", when=("mu", "first")),
    OptimNode("mb", "mul", ("mu", "buf"), "buf.mul_(momentum)", when=("mu", "!first")),
    OptimNode("cg", "mul", ("c", "gd"), "buf.add_(grad, alpha=1 - dampening)", "momentum",
              ("mu", "!first")),
    OptimNode("nb", "add", ("mb", "cg"), "buf.add_(grad, alpha=1 - dampening)", "momentum",
              ("mu", "!first"), (("c", "cg"), ("mu", "mb"))),
    OptimNode("nm", "mul", ("mu", "nb"), "grad.add(buf, alpha=momentum)", "nesterov",
              ("mu", "nesterov")),
    OptimNode("dn", "add", ("gd", "nm"), "grad.add(buf, alpha=momentum)", "nesterov",
              ("mu", "nesterov"), ((True, "nm"),)),
    OptimNode("lq", "mul", ("lr", "dn"), "param.add_(grad, alpha=-lr)", "update"),
    OptimNode("theta_new", "sub", ("theta", "lq"), "param.add_(grad, alpha=-lr)", "update",
              fuse=((True, "lq"),)),
)

#: Keras 3's ``SGD.update_step`` and ``_apply_weight_decay`` (section 8.6): the decoupled decay
#: ``variable - variable * wd * lr`` (left to right) before the update, the velocity
#: ``m*momentum - gradient*learning_rate``, and the update ``assign_add`` (``assign_sub`` of
#: ``gradient*learning_rate`` without momentum).  ``q`` is computed once: Keras computes it
#: twice under Nesterov, the same operation on the same operands, with the same value.
KERAS_NODES: tuple[OptimNode, ...] = (
    OptimNode("a", "mul", ("theta", "wd"), "variable * wd", "decay", ("wd",)),
    OptimNode("z", "mul", ("a", "lr"), "variable * wd * lr", "decay", ("wd",)),
    OptimNode("td", "sub", ("theta", "z"), "variable.assign(variable - variable * wd * lr)",
              "decay", ("wd",), ((True, "z"),)),
    OptimNode("q", "mul", ("G", "lr"), "ops.multiply(gradient, learning_rate)"),
    OptimNode("m", "mul", ("buf", "mu"), "ops.multiply(m, momentum)", when=("mu",)),
    OptimNode("v", "sub", ("m", "q"), "m.assign(m*momentum - gradient*learning_rate)",
              "momentum", ("mu",), (("mu", "m"), ("lr", "q"))),
    OptimNode("n", "mul", ("v", "mu"), "ops.multiply(m, momentum)", when=("mu", "nesterov")),
    OptimNode("s", "sub", ("n", "q"), "m*momentum - gradient*learning_rate", "nesterov",
              ("mu", "nesterov"), (("mu", "n"), ("lr", "q"))),
    OptimNode("theta_new", "add", ("td", "s"), "variable.assign_add(...)",
              when=("mu", "nesterov")),
    OptimNode("theta_new", "add", ("td", "v"), "variable.assign_add(m)",
              when=("mu", "!nesterov")),
    OptimNode("theta_new", "sub", ("td", "q"), "variable.assign_sub(gradient*learning_rate)",
              "update", ("!mu",), ((True, "q"),)),
)

#: optax's ``add_decayed_weights`` (``g + wd*p``), ``trace`` (``g + decay*t``; Nesterov
#: ``g + decay*new_trace``) and ``scale(-lr)`` with ``apply_updates`` (``p + (-lr)*u``, the
#: values of ``p - lr*u``: negation is exact and rounding symmetric), in the order of
#: ``chain(add_decayed_weights(wd), sgd(lr, mu, nesterov))`` (section 8.6).
OPTAX_NODES: tuple[OptimNode, ...] = (
    OptimNode("dq", "mul", ("wd", "theta"), "weight_decay * p", "decay", ("wd",)),
    OptimNode("gd", "add", ("G", "dq"), "g + weight_decay * p", "decay", ("wd",),
              ((True, "dq"),)),
    OptimNode("mb", "mul", ("mu", "buf"), "decay * t", when=("mu",)),
    OptimNode("nb", "add", ("gd", "mb"), "g + decay * t", "momentum", ("mu",),
              ((True, "mb"),)),
    OptimNode("nm", "mul", ("mu", "nb"), "decay * new_trace", "nesterov", ("mu", "nesterov")),
    OptimNode("dn", "add", ("gd", "nm"), "g + decay * new_trace", "nesterov",
              ("mu", "nesterov"), ((True, "nm"),)),
    OptimNode("lq", "mul", ("lr", "dn"), "(-learning_rate) * u", "update"),
    OptimNode("theta_new", "sub", ("theta", "lq"), "p + (-learning_rate) * u", "update",
              fuse=((True, "lq"),)),
)

#: ``chain(trace(mu, nesterov), add_decayed_weights(wd), scale(-lr))``: the decay between the
#: trace and the scaling (section 8.6).
OPTAX_DECAY_AFTER_NODES: tuple[OptimNode, ...] = (
    OptimNode("mb", "mul", ("mu", "buf"), "decay * t", when=("mu",)),
    OptimNode("nb", "add", ("G", "mb"), "g + decay * t", "momentum", ("mu",),
              ((True, "mb"),)),
    OptimNode("nm", "mul", ("mu", "nb"), "decay * new_trace", "nesterov", ("mu", "nesterov")),
    OptimNode("dn", "add", ("G", "nm"), "g + decay * new_trace", "nesterov",
              ("mu", "nesterov"), ((True, "nm"),)),
    OptimNode("dq", "mul", ("wd", "theta"), "weight_decay * p", "decay", ("wd",)),
    OptimNode("f", "add", ("dn", "dq"), "u + weight_decay * p", "decay", ("wd",),
              ((True, "dq"),)),
    OptimNode("lq", "mul", ("lr", "f"), "(-learning_rate) * u", "update"),
    OptimNode("theta_new", "sub", ("theta", "lq"), "p + (-learning_rate) * u", "update",
              fuse=((True, "lq"),)),
)

#: Every convention of section 8.6 as data.  The state nodes: torch's buffer ``nb``, keras's
#: velocity ``v``, optax's trace ``nb``.
CONVENTIONS: dict[str, Convention] = {
    "torch": Convention("torch", NODES, (Alias("gd", "gs", ("!wd",)),
                                         Alias("dn", "nb", ("mu", "!nesterov")),
                                         Alias("dn", "gd", ("!mu",))),
                        "nb", ("mb", "cg", "nb"), zero_state=False),
    "keras": Convention("keras", KERAS_NODES, (Alias("td", "theta", ("!wd",)),),
                        "v", ("m", "v"), zero_state=True),
    "optax": Convention("optax", OPTAX_NODES, (Alias("gd", "G", ("!wd",)),
                                               Alias("dn", "nb", ("mu", "!nesterov")),
                                               Alias("dn", "gd", ("!mu",))),
                        "nb", ("mb", "nb"), zero_state=True),
    "optax-decay-after": Convention(
        "optax-decay-after", OPTAX_DECAY_AFTER_NODES,
        (Alias("dn", "nb", ("mu", "!nesterov")), Alias("dn", "G", ("!mu",)),
         Alias("f", "dn", ("!wd",))),
        "nb", ("mb", "nb"), zero_state=True),
}


def plan(options: Options, first: bool) -> tuple[tuple[OptimNode, ...], dict[str, str]]:
    """The nodes one step of a parameter evaluates under the declared convention, and the
    aliases of those left out (:meth:`Convention.plan`)."""
    return options.rules.plan(options, first)


@dataclass(frozen=True)
class _Exact:
    """An exact arithmetic the optimiser's nodes are evaluated in: mpmath (``exact=True``, the
    normative one, as ``reference.exact``) or integer Dyadics (the bound chain's, as
    ``reference.dyadic``); ``tests/test_optim.py`` holds the two equal."""

    number: Callable[[Binary, str], object]
    ops: Mapping[str, Callable]
    neg: Callable


MPMATH = _Exact(to_mpf, dict(_EXACT, copy=lambda a: a),
                 lambda a: mpmath.fneg(a, exact=True))  # (mpf.__neg__ rounds to mp.prec)
DYADIC = _Exact(dyadic, {"mul": lambda a, b: a * b, "add": lambda a, b: a + b,
                          "sub": lambda a, b: a - b, "copy": lambda a: a}, lambda a: -a)


def parameter_nodes(theta: str, nodes: Mapping[str, object], state: State, lr: object,
                     options: Options, arith: _Exact = MPMATH) -> dict[str, object]:
    """The exact value of every optimiser node of one parameter (and of its operands
    ``theta``, ``G``, ``buf`` and the constants), in ``arith``, under the declared convention
    (a zero state where it starts from one: :meth:`Convention.start`)."""
    rules = options.rules
    state = rules.start(state, options)
    buf = state.buffer(theta)
    number = arith.number
    values = {"theta": nodes[theta], "G": nodes[PARAMETERS[theta]], "lr": lr,
              "wd": number(options.weight_decay, "weight_decay"),
              "mu": number(options.momentum, "momentum"),
              # 1 - tau, exactly (torch rounds it to binary64: a legal evaluation's choice)
              "c": arith.ops["sub"](number(1, "1"), number(options.dampening, "dampening"))}
    if buf is not None:
        values["buf"] = number(buf, f"buf_{theta}")
    keep, alias = rules.plan(options, first=buf is None)
    for node in keep:
        args = [values[resolve_alias(a, alias)] for a in node.args]
        if node.op == "sign":
            values[node.name] = arith.neg(args[0]) if options.maximize else args[0]
        else:
            values[node.name] = arith.ops[node.op](*args)
    for name, target in alias.items():
        values.setdefault(name, values[resolve_alias(target, alias)])
    return values


def resolve_alias(name: str, alias: Mapping[str, str]) -> str:
    while name in alias:
        name = alias[name]
    return name


def exact_sgd_nodes(state: State, x: Binary, t: Binary, lr: Binary, options: Options
                    ) -> tuple[dict, dict[str, dict]]:
    """The exact value of every node of a step of a run from ``state``: the plain step's
    (``reference.exact.exact_nodes``) and, per parameter, the optimiser's (by node name, with
    its inputs ``theta``, ``G``, ``buf`` and the constants)."""
    if not options.buffered and (state.buf_w is not None or state.buf_b is not None):
        raise ValueError("a buffer is given but the options keep none (momentum is 0)")
    if (state.buf_w is None) != (state.buf_b is None):
        raise ValueError("both parameters have a buffer, or neither")
    nodes = exact_nodes(state.w, state.b, x, t, lr)
    lr_exact = to_mpf(lr, "lr")
    return nodes, {theta: parameter_nodes(theta, nodes, state, lr_exact, options)
                   for theta in PARAMETERS}


def exact_sgd_step(state: State, x: Binary, t: Binary, lr: Binary,
                   options: Options) -> dict[str, Optional[Fraction]]:
    """The exact step of a run from ``state`` (an implementation's reported state, section
    8.4): the quantities of :data:`STEP_QUANTITIES` as Fractions (a buffer None where the run
    keeps none)."""
    nodes, params = exact_sgd_nodes(state, x, t, lr, options)
    out: dict[str, Optional[Fraction]] = {q: to_fraction(nodes[NODE_OF[q]])
                                          for q in REQUIRED if q not in UPDATED}
    for theta, values in params.items():
        out[f"{theta}_new"] = to_fraction(values["theta_new"])
    for theta, values in params.items():
        out[f"buf_{theta}"] = to_fraction(values[options.rules.state]) if options.buffered \
            else None
    return out


def exact_trajectory(w0: Binary, b0: Binary, data: Iterable[tuple[Binary, Binary, Binary]],
                     options: Options) -> list[dict[str, Fraction]]:
    """The run with no rounding anywhere (section 8.5): each step's exact quantities from the
    exact state after the step before, over ``data`` = (x_k, t_k, lr_k)."""
    state, steps = State(w0, b0), []
    for x, t, lr in data:
        step = exact_sgd_step(state, x, t, lr, options)
        steps.append(step)
        state = State(step["w_new"], step["b_new"], step["buf_w"], step["buf_b"])
    return steps
