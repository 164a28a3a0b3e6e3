"""The step, described once: its inputs, its operations and the quantities it yields.

One gradient-descent step of y = w*x + b, L = (y - t)^2 / 2 is this chain of operations
(nodes), each rounded once by an IEEE implementation::

    p = w*x;  y = p + b;  r = y - t;  sq = r*r;  loss = sq/2
    g = r                       (autograd's dL/dr = 0.5*(2*r): exact, but 2*r must not overflow)
    gw = g*x;  lgw = lr*gw;  w_new = w - lgw;  lgb = lr*g;  b_new = b - lgb

Everything else in the reference reads this table: the exact values (``exact``), the rounded
evaluations and their legal variants (``rounded``), the bound chain (``bounds``, in every
arithmetic it runs in) and the vectorised and compiled batch paths (``batch``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["INPUTS", "Case", "Node", "NODES", "NODE", "QUANTITIES", "REQUIRED", "OPTIONAL",
           "NODE_OF", "OPS", "ANCESTORS", "product_operand", "SEED_EXAMPLE"]

#: The inputs of one step, in the order every interface takes them.
INPUTS: tuple[str, ...] = ("w", "b", "x", "t", "lr")


class Case(NamedTuple):
    """One case: the inputs of a step, as Python floats holding values of a format (``lr``
    may be any binary64 value where a model admits it)."""

    w: float
    b: float
    x: float
    t: float
    lr: float


#: The operations a node may apply, and the kind of rounding error each makes (``bounds``).
OPS: dict[str, str] = {
    "mul": "mul",  # a*b
    "add": "add",  # a + b
    "sub": "add",  # a - b (a sum: negation is exact)
    "square": "sq",  # r*r (an implementation may compute it with pow)
    "half": "half",  # s/2 (0.5*s: exact unless the result is subnormal)
    "grad": "",  # autograd's 0.5*(2*r): the value of its operand, no rounding
}


@dataclass(frozen=True)
class Node:
    """One operation of the step: ``name = op(args)``.

    ``fusion`` names the group of a sum that an implementation may fuse with its product
    operand into one rounding (a fused multiply-add): "forward" (y = w*x + b) or "update"
    (w - lr*g).  ``text`` is how messages name the operation."""

    name: str
    op: str
    args: tuple[str, ...]
    text: str
    fusion: str = ""

    @property
    def kind(self) -> str:
        """The kind of rounding error the operation makes (see ``bounds.rounding_term``)."""
        return OPS[self.op]


NODES: tuple[Node, ...] = (
    Node("p", "mul", ("w", "x"), "w*x"),
    Node("y", "add", ("p", "b"), "y = w*x + b", fusion="forward"),
    Node("r", "sub", ("y", "t"), "r = y - t"),
    Node("sq", "square", ("r",), "r*r"),
    Node("loss", "half", ("sq",), "loss = r*r/2"),
    Node("g", "grad", ("r",), "autograd's 2*r"),
    Node("gw", "mul", ("g", "x"), "dL_dw = r*x"),
    Node("lgw", "mul", ("lr", "gw"), "lr*dL_dw"),
    Node("w_new", "sub", ("w", "lgw"), "w_new = w - lr*dL_dw", fusion="update"),
    Node("lgb", "mul", ("lr", "g"), "lr*dL_db"),
    Node("b_new", "sub", ("b", "lgb"), "b_new = b - lr*dL_db", fusion="update"),
)
NODE: dict[str, Node] = {n.name: n for n in NODES}

#: The quantities of one step, in the order the spec names them.
QUANTITIES: tuple[str, ...] = ("y", "dL_dy", "loss", "dL_dw", "dL_db", "w_new", "b_new")
#: The quantities an implementation must return (``dL_dy`` is optional: it equals dL_db).
REQUIRED: tuple[str, ...] = ("y", "loss", "dL_dw", "dL_db", "w_new", "b_new")
OPTIONAL: tuple[str, ...] = ("dL_dy",)
#: Which node each quantity is.
NODE_OF: dict[str, str] = {"y": "y", "dL_dy": "g", "loss": "loss", "dL_dw": "gw", "dL_db": "g",
                           "w_new": "w_new", "b_new": "b_new"}


def _ancestors() -> dict[str, tuple[str, ...]]:
    """Per node, the nodes its value depends on and itself, in the order of NODES."""
    out: dict[str, set] = {}
    for node in NODES:
        out[node.name] = {node.name}.union(*(out.get(a, set()) for a in node.args))
    return {name: tuple(n.name for n in NODES if n.name in deps) for name, deps in out.items()}


#: Per node, the nodes on the way to it (itself included), in the order of NODES.
ANCESTORS: dict[str, tuple[str, ...]] = _ancestors()

#: The seed notebook's example step, its inputs as the notebook writes them (decimal literals,
#: rounded to each format where used): the worked example of spec/neuron.md section 6.
SEED_EXAMPLE: dict[str, str] = {"w": "0.5", "b": "-0.1", "x": "2.0", "t": "1.0", "lr": "0.1"}


def product_operand(node: Node) -> "tuple[Node, str] | None":
    """For a sum that may be fused: (its product operand, its other operand)."""
    if not node.fusion:
        return None
    for i, arg in enumerate(node.args):
        if arg in NODE and NODE[arg].op == "mul":
            return NODE[arg], node.args[1 - i]
    raise AssertionError(f"{node.name} is marked fusable but has no product operand")


def _check_table() -> None:
    """Each node reads only inputs and earlier nodes; every quantity is a node."""
    seen = set(INPUTS)
    for node in NODES:
        assert node.op in OPS, node
        assert all(a in seen for a in node.args), node
        seen.add(node.name)
    assert set(NODE_OF) == set(QUANTITIES) and set(NODE_OF.values()) <= seen
    assert set(REQUIRED) | set(OPTIONAL) == set(QUANTITIES)


_check_table()
