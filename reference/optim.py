"""SGD with the options of ``torch.optim.SGD`` over many steps (spec/neuron.md section 8): the
optimiser's nodes described once, as data, and their exact values.

A step of a run starts from a state ``(w, b, buf_w, buf_b)``: the plain step of
``reference.step`` gives each parameter's gradient ``G`` (``gw`` for w, ``g`` for b), and the
nodes below turn it into the parameter's new value and buffer, in the order of torch 2.13.0's
``_single_tensor_sgd``::

    gs = sigma*G;  gd = gs + wd*theta;  nb = gd (first step) | mu*buf + c*gd (c = 1 - tau)
    dn = gd + mu*nb (Nesterov) | nb (momentum) | gd;  theta_new = theta - lr*dn

Nodes of options that are off are left out and their operand is passed on (:func:`plan`).
Every value here is exact: the operations of ``reference.exact`` (mpmath, ``exact=True``) on
the binary inputs, so that a step of a run is judged against the exact step from the
implementation's own reported state (section 8.4), and :func:`exact_trajectory` is the run
with no rounding anywhere (section 8.5).  The bounds and the legal evaluations of these nodes
are not implemented yet (section 8.3 describes them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterable, Mapping, Optional

import mpmath

from .dyadic import dyadic
from .exact import _EXACT, Binary, exact_nodes, to_mpf
from .formats import to_fraction
from .step import NODE_OF, REQUIRED

__all__ = ["Options", "State", "OptimNode", "PARAMETERS", "BUFFERS", "UPDATED",
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


@dataclass(frozen=True)
class Options:
    """The constant options of a run (section 8.1), as binary values; ``lr`` is data of each
    step.  Combinations torch rejects raise ``ValueError`` with torch's reason."""

    momentum: Binary = 0.0
    dampening: Binary = 0.0
    nesterov: bool = False
    weight_decay: Binary = 0.0
    maximize: bool = False
    #: the format the buffer is kept and computed in (None: the parameter format); the exact
    #: step does not depend on it, the bounds and the legal evaluations do (section 8.3)
    buffer_format: Optional[str] = None

    def __post_init__(self) -> None:
        for name in ("momentum", "dampening", "weight_decay"):
            value = getattr(self, name)
            if not math.isfinite(float(value)):
                raise ValueError(f"{name} = {value!r} is not finite")
        if float(self.momentum) < 0:
            raise ValueError(f"Invalid momentum value: {self.momentum} (it must be >= 0)")
        if float(self.weight_decay) < 0:
            raise ValueError(f"Invalid weight_decay value: {self.weight_decay} (it must be >= 0)")
        if self.nesterov and (float(self.momentum) <= 0 or float(self.dampening) != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    @property
    def buffered(self) -> bool:
        """Whether the run keeps momentum buffers (mu != 0; either zero means none)."""
        return float(self.momentum) != 0


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
    ``c``, ``lr``).  ``fusion``: the group of a sum an implementation may fuse with its product
    operand (section 8.3)."""

    name: str
    op: str
    args: tuple[str, ...]
    torch: str
    fusion: str = ""


#: Every node of section 8.3, in evaluation order; :func:`plan` keeps those a step uses.
NODES: tuple[OptimNode, ...] = (
    OptimNode("gs", "sign", ("G",), "grads[i] if not maximize else -grads[i]"),
    OptimNode("dq", "mul", ("wd", "theta"), "grad.add(param, alpha=weight_decay)", "decay"),
    OptimNode("gd", "add", ("gs", "dq"), "grad.add(param, alpha=weight_decay)", "decay"),
    OptimNode("nb", "copy", ("gd",), "buf = grad.detach().clone()"),
    OptimNode("mb", "mul", ("mu", "buf"), "buf.mul_(momentum)"),
    OptimNode("cg", "mul", ("c", "gd"), "buf.add_(grad, alpha=1 - dampening)", "momentum"),
    OptimNode("nb", "add", ("mb", "cg"), "buf.add_(grad, alpha=1 - dampening)", "momentum"),
    OptimNode("nm", "mul", ("mu", "nb"), "grad.add(buf, alpha=momentum)", "nesterov"),
    OptimNode("dn", "add", ("gd", "nm"), "grad.add(buf, alpha=momentum)", "nesterov"),
    OptimNode("lq", "mul", ("lr", "dn"), "param.add_(grad, alpha=-lr)", "update"),
    OptimNode("theta_new", "sub", ("theta", "lq"), "param.add_(grad, alpha=-lr)", "update"),
)


def plan(options: Options, first: bool) -> tuple[tuple[OptimNode, ...], dict[str, str]]:
    """The nodes one step of a parameter evaluates, and the aliases of those left out (a node
    of an option that is off is its operand: ``gd = gs`` without weight decay, ...).  ``first``:
    the parameter has no buffer yet."""
    wd = float(options.weight_decay) != 0
    mu = options.buffered
    keep, alias = [], {}
    for node in NODES:
        if node.name in ("dq", "gd") and not wd:
            alias["gd"] = "gs"
            continue
        if node.name == "nb" and node.op == "copy" and not (mu and first):
            continue
        if node.name in ("mb", "cg") or (node.name == "nb" and node.op == "add"):
            if not mu or first:
                continue
        if node.name in ("nm", "dn") and not (mu and options.nesterov):
            alias["dn"] = "nb" if mu else "gd"
            continue
        keep.append(node)
    return tuple(keep), alias


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
    ``theta``, ``G``, ``buf`` and the constants), in ``arith``."""
    buf = state.buffer(theta)
    number = arith.number
    values = {"theta": nodes[theta], "G": nodes[PARAMETERS[theta]], "lr": lr,
              "wd": number(options.weight_decay, "weight_decay"),
              "mu": number(options.momentum, "momentum"),
              # 1 - tau, exactly (torch rounds it to binary64: a legal evaluation's choice)
              "c": arith.ops["sub"](number(1, "1"), number(options.dampening, "dampening"))}
    if buf is not None:
        values["buf"] = number(buf, f"buf_{theta}")
    keep, alias = plan(options, first=buf is None)
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
        out[f"buf_{theta}"] = to_fraction(values["nb"]) if options.buffered else None
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
