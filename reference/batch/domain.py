"""Which float64 cases are inside the bounded domain, from magnitudes alone.

A value is outside the bounded domain where some node on the way to it may overflow: the bound
chain's flag, ``|exact| + error bound > largest finite`` (``bounds.Chain.node``).  Deciding that
takes the whole chain, which for float64 costs microseconds a case (x87 extended or scaled
pairs).  This screen decides nearly every case from two binary64 magnitudes per node instead,
and leaves the rest (``UNDECIDED``) to the chain.  Let ``M = |exact| + error bound`` of a node:

- ``upper`` is the step evaluated on absolute values in binary64.  The chain's rules give
  ``M <= (1 + 2u) * F(M of the operands) + an underflow term`` for each node, where ``F`` is the
  node's operation on absolute values (a product's ``|ab| + |a|Eb + |b|Ea + EaEb`` is
  ``(|a| + Ea)(|b| + Eb)``, a sum's ``|a + b| + Ea + Eb <= (|a| + Ea) + (|b| + Eb)``, and each
  node adds at most two roundings of ``u`` each relative to that).  Over the step's depth
  (7 roundings) ``M <= (1 + 2^-48) upper`` plus underflow terms of at most ``2^-1074`` times two
  input magnitudes (``2^-1074 * 2^2048``, that is ``2^-50`` of the largest finite value), and
  ``upper``'s own rounding is ``2^-50`` of it.  So where ``upper <= (1 - 2^-40) * largest`` the
  flag is not set (models ieee and strict: the batch path's; a flush-to-zero leaf error could
  be ``2^-1022``, which this argument does not cover).
- ``lower`` is a lower bound of ``|exact|``, needed only where every node before is not flagged
  (so ``upper`` is finite and the binary64 values accurate): a product's is the product of its
  operands', rounded down; a sum's is ``|computed| - 2^-40 upper - 2^-1000`` (the binary64
  evaluation's error is a few ``u`` times ``upper`` plus underflows).  Where it exceeds the
  largest finite value the flag is set (``M >= |exact|``), and this node is the first flagged
  on the way: the origin ``bounds.overflow_origin`` gives.

The screen is written once against ``ops``: numpy runs it on arrays (:func:`domain_screen`
without numba) and it is traced into a compiled loop as the kernels are (``kernel``).
``tests/test_domain.py`` holds every decided case to the chain's own origins, on every regime
and model of the batch path.  Only float64 needs it: the narrow formats' compiled screen runs
the chain itself.
"""

from __future__ import annotations

import sys
from typing import Any, Mapping

import numpy as np

from ..formats import Format, get_format
from ..model import Model, get_model
from ..step import ANCESTORS, INPUTS, NODE, NODE_OF, NODES
from .arith import ArrayOps
from .judgement import ROWS
from .kernel import HELPERS, Sym, SymOps, Tracer, generated, print_source

__all__ = ["UNDECIDED", "origins", "domain_screen", "source"]

#: Origin of a value the screen leaves to the bound chain.
UNDECIDED = -2
#: At or below this fraction of the largest finite value, a node's absolute-value evaluation
#: cannot reach the overflow flag.
_SAFE = 1 - 2.0 ** -40
_DOWN = 1 - 2.0 ** -50  # rounds a product of lower bounds down past binary64's rounding


def _slack(upper: Any, tiny: Any) -> Any:
    """At least ``|exact - computed|`` plus the chain's error bound of a node whose operands
    are not flagged: ``2^-40`` of its absolute-value evaluation (each is a few ``u`` of it)
    plus 16 times its absolute terms (each rounding's underflow, at most ``2^-1074``, carried
    through the products after it)."""
    return 2.0 ** -40 * upper + 16 * tiny


#: Two roundings' underflow (half the smallest subnormal each, binary64 evaluation and chain).
_UNDERFLOW = 2.0 ** -1073
#: Half an ulp of a normal binary64 value v is more than 2^-54 v.
_HALF_ULP = 2.0 ** -54


def origins(ops: Any, fmt: Format, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Per quantity (``ROWS``): -1 inside the bounded domain, the index in NODES of the first
    node that may overflow on the way to it, or :data:`UNDECIDED`; ``inputs``: binary64 values
    of w, b, x, t, lr (arrays with ``ArrayOps``, traced values with ``SymOps``)."""
    if fmt.p != 53:
        raise ValueError(f"the domain screen is float64's, not {fmt.name}'s")
    largest, sel = fmt.largest_finite, ops.select
    value = dict(inputs)
    upper = {k: abs(v) for k, v in value.items()}
    lower, most = dict(upper), dict(upper)
    floor = {k: 0.0 for k in value}  # absolute terms: underflows, carried through products
    least_error = {k: 0.0 for k in value}  # a lower bound of the chain's error bound
    safe, flagged = {}, {}
    for node in NODES:
        a = node.args
        if node.op in ("mul", "square"):
            b = a[-1]
            v, up = value[a[0]] * value[b], upper[a[0]] * upper[b]
            low = lower[a[0]] * lower[b] * _DOWN
            tiny = floor[a[0]] * most[b] + floor[b] * most[a[0]] + _UNDERFLOW
            # the propagated part of the error bound, |a|Eb + |b|Ea + EaEb (the first product
            # of inputs has none: its rounding may be exact)
            least = (lower[a[0]] * least_error[b] + lower[b] * least_error[a[0]]
                     + least_error[a[0]] * least_error[b]) * _DOWN
        elif node.op in ("add", "sub"):
            v = value[a[0]] + value[a[1]] if node.op == "add" else value[a[0]] - value[a[1]]
            up = upper[a[0]] + upper[a[1]]
            tiny = floor[a[0]] + floor[a[1]] + _UNDERFLOW
            low = ops.maximum(abs(v) - _slack(up, tiny), 0.0)
            # Ea + Eb, and a rounding of at least half an ulp of |exact| (normal range)
            least = (least_error[a[0]] + least_error[a[1]]
                     + sel(low >= fmt.smallest_normal, _HALF_ULP * low, 0.0)) * _DOWN
        elif node.op == "half":
            v, up, low = value[a[0]] / 2, upper[a[0]] / 2, lower[a[0]] / 2 * _DOWN
            tiny = floor[a[0]] + _UNDERFLOW
            least = least_error[a[0]] / 2 * _DOWN
        elif node.op == "grad":  # the value of r
            v, up, low, tiny = value[a[0]], upper[a[0]], lower[a[0]], floor[a[0]]
            least = least_error[a[0]]
        else:
            raise AssertionError(f"no magnitude rule for the operation {node.op!r}")
        value[node.name], upper[node.name], lower[node.name] = v, up, low
        floor[node.name], least_error[node.name] = tiny, least
        most[node.name] = abs(v) + _slack(up, tiny)  # >= |exact| + error bound
        test_most, test_least = most[node.name], (low + least) * _DOWN  # <= |exact| + bound
        if node.op == "grad":  # its flag is 2*(|r| + error bound) > largest
            test_most, test_least = 2 * test_most, 2 * test_least
        safe[node.name] = test_most <= _SAFE * largest
        flagged[node.name] = test_least > largest
    out = {}
    for q in ROWS:
        origin: Any = -1
        open_: Any = True  # every node before is surely not flagged
        for n in ANCESTORS[NODE_OF[q]]:
            hit = ops.logical_and(open_, ops.logical_not(safe[n]))
            origin = sel(hit, sel(flagged[n], NODES.index(NODE[n]), UNDECIDED), origin)
            open_ = ops.logical_and(open_, safe[n])
        out[q] = origin
    return out


def domain_screen(fmt: "Format | str", cases: Mapping[str, np.ndarray],
                  engine: str = "auto") -> dict[str, np.ndarray]:
    """:func:`origins` of every case (int8 arrays per quantity of ``ROWS``), compiled where
    numba is installed (``engine`` "auto"), else on numpy arrays (``engine`` "numpy")."""
    fmt = get_format(fmt)
    cols = [np.ascontiguousarray(cases[k], dtype=np.float64) for k in INPUTS]
    module = generated("domain", fmt, "ieee", source) if engine != "numpy" else None
    if module is not None:
        out = np.empty((len(ROWS), len(cols[0])), dtype=np.int8)
        module.domain(*cols, out)
        return dict(zip(ROWS, out))
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        found = origins(ArrayOps, fmt, dict(zip(INPUTS, cols)))
    shape = cols[0].shape
    return {q: np.broadcast_to(o, shape).astype(np.int8) for q, o in found.items()}


def source(fmt: "Format | str", model: "Model | str" = "ieee") -> str:
    """The compiled screen's module: ``domain(w, b, x, t, lr, out)`` (the model does not
    matter: magnitudes only)."""
    fmt, model = get_format(fmt), get_model(model)
    t = Tracer()
    t.indent = 2
    for k in INPUTS:
        t.line(f"{k}_i = {k}[i]")
    found = origins(SymOps, fmt, {k: Sym(t, f"{k}_i") for k in INPUTS})
    for j, q in enumerate(ROWS):
        t.line(f"out[{j}, i] = {found[q].name if isinstance(found[q], Sym) else found[q]}")
    return (f'"""Generated by reference.batch.domain from its own code ({fmt.name}).\n'
            f'Do not edit: it is regenerated whenever that code changes."""\n\n' + HELPERS + '''

@njit(cache=True, nogil=True, error_model="numpy")
def domain(w, b, x, t, lr, out):
    """Per case and quantity: the origin of an overflow flag (domain.origins)."""
    for i in range(w.shape[0]):
''' + "\n".join(t.lines) + "\n")


def main(argv: "list[str] | None" = None) -> int:
    return print_source("reference.batch.domain", source, argv)


if __name__ == "__main__":
    sys.exit(main())
