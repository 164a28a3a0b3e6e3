"""The exact reference: one gradient-descent step of y = w*x + b, L = 1/2 (y - t)^2, in mpmath.

Inputs are binary floating-point values (the values an implementation actually holds).  Every
result of the step is then a dyadic rational, so it is computed *exactly* with mpmath's
``exact=True`` operations: no working precision is involved, and changing ``mpmath.mp.prec``
changes nothing here.  Rounding to a format happens later, explicitly (:mod:`reference.formats`).

The operations are those of :data:`reference.step.NODES`, evaluated exactly: every node's exact
value is available (:func:`exact_nodes`), and the quantities are read off them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Iterator, Union

import mpmath
from mpmath.libmp import from_man_exp

from .formats import Format, to_fraction
from .step import INPUTS, NODE_OF, NODES, QUANTITIES

__all__ = ["QUANTITIES", "ExactStep", "to_mpf", "exact_step", "exact_nodes", "exact_loss",
           "exact_scales", "scale_ulp"]

Binary = Union[float, int, Fraction, "mpmath.mpf"]


def to_mpf(value: Binary, what: str = "value") -> mpmath.mpf:
    """The exact mpmath value of a finite binary number, independent of ``mpmath.mp.prec``.

    Accepts ``float``, ``int``, ``mpf`` and ``Fraction`` with a power-of-two denominator.
    A decimal string or a non-dyadic fraction is refused: convert it to a format first with
    ``Format.parse`` / ``Format.round``, so the conversion is explicit.
    """
    if isinstance(value, mpmath.mpf):
        if not mpmath.isfinite(value):
            raise ValueError(f"{what} = {value} is not finite; the step is defined on finite inputs")
        return value
    if isinstance(value, bool):
        raise TypeError(f"{what} is a bool, not a number")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{what} = {value!r} is not finite; the step is defined on finite inputs")
        n, d = value.as_integer_ratio()
    elif isinstance(value, int):
        n, d = value, 1
    elif isinstance(value, Fraction):
        n, d = value.numerator, value.denominator
        if d & (d - 1):
            raise ValueError(
                f"{what} = {value} is not a binary floating-point value (its denominator is not "
                "a power of two); round it to a format first, e.g. FLOAT32.round(value)"
            )
    elif isinstance(value, str):
        raise TypeError(
            f"{what} = {value!r} is a string; convert decimal text explicitly to a format "
            "first, e.g. FLOAT32.parse('0.1'), so the rounding is visible"
        )
    else:
        raise TypeError(f"{what} has unsupported type {type(value).__name__}")
    # from_man_exp with prec=0 only normalises: it never rounds.
    return mpmath.mp.make_mpf(from_man_exp(n, -(d.bit_length() - 1)))


@dataclass(frozen=True)
class ExactStep:
    """Exact values of every quantity of one step (``mpmath.mpf``, no rounding anywhere)."""

    y: mpmath.mpf
    dL_dy: mpmath.mpf
    loss: mpmath.mpf
    dL_dw: mpmath.mpf
    dL_db: mpmath.mpf
    w_new: mpmath.mpf
    b_new: mpmath.mpf

    def __getitem__(self, name: str) -> mpmath.mpf:
        if name not in QUANTITIES:
            raise KeyError(f"{name!r} is not a quantity; quantities are {', '.join(QUANTITIES)}")
        return getattr(self, name)

    def items(self) -> Iterator[tuple[str, mpmath.mpf]]:
        for f in fields(self):
            yield f.name, getattr(self, f.name)

    def as_fractions(self) -> dict[str, Fraction]:
        """The same values as ``fractions.Fraction`` (exact)."""
        return {name: to_fraction(v) for name, v in self.items()}


#: The exact operation of each kind of node (mpmath, no rounding).
_EXACT = {
    "mul": lambda a, b: mpmath.fmul(a, b, exact=True),
    "add": lambda a, b: mpmath.fadd(a, b, exact=True),
    "sub": lambda a, b: mpmath.fsub(a, b, exact=True),
    "square": lambda r: mpmath.fmul(r, r, exact=True),
    "half": lambda s: mpmath.ldexp(s, -1),  # exact: only the exponent changes
    "grad": lambda r: r,
}


def exact_nodes(w: Binary, b: Binary, x: Binary, t: Binary, lr: Binary) -> dict[str, mpmath.mpf]:
    """The exact value of every input and node of the step (``reference.step.NODES``)."""
    values = {name: to_mpf(v, name) for name, v in zip(INPUTS, (w, b, x, t, lr))}
    for node in NODES:
        values[node.name] = _EXACT[node.op](*(values[a] for a in node.args))
    return values


def exact_scales(w: Binary, b: Binary, x: Binary, t: Binary, lr: Binary) -> dict[str, Fraction]:
    """The scale of every node: the step on the inputs' magnitudes with every difference a sum
    (|w||x| + |b| for y, (|w||x| + |b| + |t|)|x| for dL_dw, ...), exactly.

    It is the magnitude a forward error bound is relative to (Higham's |f|(|x|)): every
    rounding error on the way to a node is at most u times a part of it, so errors quoted in
    ulps of the scale stay a few ulps however much a difference cancels, and
    ``scale / |exact|`` is the node's conditioning."""
    values = {name: abs(to_mpf(v, name)) for name, v in zip(INPUTS, (w, b, x, t, lr))}
    for node in NODES:
        op = "add" if node.op == "sub" else node.op
        values[node.name] = _EXACT[op](*(values[a] for a in node.args))
    return {name: to_fraction(v) for name, v in values.items()}


def scale_ulp(fmt: "Format", scale: Fraction) -> Fraction:
    """The unit an error is quoted in against its scale: the ulp of the scale's binade in the
    format, also past the largest finite one (the bound's h(M) is; ``Format.ulp`` stops at the
    top binade)."""
    return Fraction(2) ** (fmt.exponent(scale) - fmt.p + 1)


def exact_step(w: Binary, b: Binary, x: Binary, t: Binary, lr: Binary) -> ExactStep:
    """One exact gradient-descent step on binary inputs ``w, b, x, t`` and learning rate ``lr``.

    y = w*x + b;  dL/dy = y - t;  L = (y - t)^2 / 2;  dL/dw = (y - t)*x;  dL/db = y - t;
    w' = w - lr*dL/dw;  b' = b - lr*dL/db.
    """
    values = exact_nodes(w, b, x, t, lr)
    return ExactStep(**{q: values[NODE_OF[q]] for q in QUANTITIES})


def exact_loss(w: Binary, b: Binary, x: Binary, t: Binary) -> mpmath.mpf:
    """The exact loss (w*x + b - t)^2 / 2 at any binary point (used for difference identities)."""
    nodes = exact_nodes(w, b, x, t, 0.0)
    return nodes["loss"]
