"""The exact level as compiled loops (numba), generated from ``legal.evaluate_step``.

``legal.evaluate_step`` is the admitted evaluations on arrays.  Called on symbolic values
(``kernel.Sym``) in a :class:`legal.VariantArithmetic` of :class:`CallOps`, it records each
evaluation as straight-line Python: the operations numpy performs on values of at most 26 bits
(exact products in binary64, TwoSum pairs rounded by ``arith.round_to``; a rounding to binary32
by the processor's conversion and addition, as numpy's float32 arrays do it; float16 sums,
exact in binary64, rounded without a TwoSum), in the same order.
Each distinct expression is recorded once (:class:`SharingTracer`), so the evaluations share
what they have in common.

Per format and model the generated module holds ``first``, the first admitted evaluation of
every case without a branch (it vectorises), which marks the cases where some value is not
that evaluation's; and per node ``explain_NODE``, a loop over those values alone (gathered
into arrays of their own) that computes every distinct value of the node in admitted order,
again without a branch, and keeps the index of the first giving the observed value bit for
bit (2% of a sweep's cases: computing every value vectorised costs less than stopping at the
first match case by case, 1.1 against 5 to 7 ns a case in float16).  That is
``legal.explain_batch``'s answer: there too each value gets the first admitted evaluation that
gives it.  An evaluation not written for traced values (binary64 operands: float32 work kept
in binary64 under ``+wide``) hands the case to ``legal.explain_batch``, and so does a chunk
whose learning rates are not all values of the format (other evaluations are admitted there).
``tests/test_explain_compiled.py`` compares the two on every regime, with values of every
admitted evaluation and values of none.

Sources are written once under the hash of their text to the kernel cache directory
(``kernel.cache_dir``) and imported from there, so numba caches the compiled code next to them.
``python -m reference.batch.explain_kernel FORMAT MODEL`` prints one.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Mapping, Sequence

import numpy as np

from ..formats import Format, get_format
from ..model import Model, get_model
from ..rounded import Variant, admitted
from ..step import INPUTS, NODE_OF, REQUIRED
from .judgement import ROWS
from .kernel import HELPERS, Sym, SymOps, Tracer, compiled, generated, print_source
from .legal import Explained, VariantArithmetic, evaluate_step, explain_batch

__all__ = ["SharingTracer", "compiled_variants", "source", "kernels", "explain_compiled"]

#: The functions of a generated module: ``first`` and one loop per node of ``REQUIRED``.
FUNCTIONS = ("first", *dict.fromkeys(f"explain_{NODE_OF[q]}" for q in REQUIRED))

#: Per case, the bits ``first`` sets: a value the first evaluation does not give; an lr that is
#: not a value of the format (the chunk's admitted evaluations are other ones: numpy decides).
UNEXPLAINED, LR_OUTSIDE = 1, 2


class SharingTracer(Tracer):
    """A tracer that records each distinct expression once: the same text of the same operands
    is the same value, so later variants reuse what earlier ones computed."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, Sym] = {}

    def emit(self, expression: str) -> Sym:
        sym = self.seen.get(expression)
        if sym is None:
            sym = self.seen[expression] = super().emit(expression)
        return sym


class CallOps(SymOps):
    """``kernel.SymOps`` whose selections are calls, not conditional expressions: a function
    of thousands of branches is more than numba's bytecode analysis takes (it crashes); LLVM
    inlines the calls into selects."""

    SELECT = "_select({0}, {1}, {2})"


def work_arithmetic(fmt: Format, variant: Variant) -> "VariantArithmetic | None":
    """The traced arithmetic of a variant, or None where its operands are wider than 26 bits
    (their exact operations are numpy's alone)."""
    A = VariantArithmetic(fmt, variant.work, variant.ftz, ops=CallOps)
    return A if A.narrow and not A.x87 else None


def compiled_variants(fmt: "Format | str", model: "Model | str") -> list[bool]:
    """Per admitted evaluation (lr a value of the format), whether the compiled loop runs it."""
    fmt, model = get_format(fmt), get_model(model)
    return [work_arithmetic(fmt, v) is not None for v in admitted(fmt, model, lr_in_format=True)]


def _text(value: Any) -> str:
    return value.name if isinstance(value, Sym) else repr(float(value))


def _trace(fmt: Format, variant: Variant, inputs: dict) -> "dict[str, Any] | None":
    """The quantities of one evaluation on traced inputs (None: numpy's alone)."""
    A = work_arithmetic(fmt, variant)
    if A is None:
        return None
    values, undecided = evaluate_step(A, variant, dict(inputs), lr_in_format=True)
    assert undecided is False, "the narrow arithmetic guarantees every case"
    return values


def _same(observed: str, value: Any) -> str:
    """Source of: the observed value is ``value`` bit for bit (every NaN equals every NaN), as
    ``legal.same_bits``."""
    v = _text(value)
    return f"(_bits({observed}) == _bits({v})) | (({observed} != {observed}) & ({v} != {v}))"


def _inputs(t: Tracer) -> dict[str, Sym]:
    return {k: Sym(t, f"{k}_i") for k in INPUTS}


def _read_case(t: Tracer, rows: int) -> None:
    for k in INPUTS:
        t.line(f"{k}_i = {k}[i]")
    for j in range(rows):
        t.line(f"o{j} = outs[{j}, i]")


def _lr_outside(fmt: Format, lr: Sym) -> str:
    """Source of: lr is not a value of the format (``legal.explain_batch``'s test, traced)."""
    A = VariantArithmetic(fmt, "format", False, ops=CallOps)
    return f"{_text(A.rounded(lr))} != {lr.name}"


def _first_body(fmt: Format, model: Model, names: Sequence[str], t: Tracer) -> None:
    _read_case(t, len(names))
    inputs = _inputs(t)
    values = _trace(fmt, admitted(fmt, model, lr_in_format=True)[0], inputs)
    assert values is not None, "the first admitted evaluation runs on format values"
    for j, q in enumerate(names):
        t.line(f"h{j} = {_same(f'o{j}', values[q])}")
        t.line(f"which[{j}, i] = _select(h{j}, 0, -1)")
    hits = " & ".join(f"h{j}" for j in range(len(names)))
    t.line(f"pending[i] = _select({hits}, 0, {UNEXPLAINED}) | "
           f"_select({_lr_outside(fmt, inputs['lr'])}, {LR_OUTSIDE}, 0)")


def _cone(lines: list[str]):
    """For the lines ``vN = expression`` of a trace: the line numbers a name needs, itself
    included (inputs need none)."""
    where = {line.split(" = ", 1)[0]: i for i, line in enumerate(lines)}
    uses = [re.findall(r"\bv\d+\b", line.split(" = ", 1)[1]) for line in lines]

    def need(name: str) -> set[int]:
        found: set[int] = set()
        todo = [name]
        while todo:
            i = where.get(todo.pop())
            if i is not None and i not in found:
                found.add(i)
                todo += uses[i]
        return found

    return need


def _quantity_functions(fmt: Format, model: Model, names: Sequence[str]) -> dict[str, str]:
    """Per node of a returned quantity, the body of a loop over cases and observed values,
    without a branch (it vectorises): ``k``, the first admitted evaluation after the first that
    gives the value (its index), -1 for none, -2 where an evaluation only numpy runs comes
    first.  Each evaluation computes only what the node needs, and a value already compared is
    not compared again."""
    t = SharingTracer()
    inputs = _inputs(t)
    traces = [_trace(fmt, v, inputs) for v in admitted(fmt, model, lr_in_format=True)]
    need = _cone(t.lines)
    out: dict[str, str] = {}
    for q in names:
        node = NODE_OF[q]
        if node in out:
            continue
        body: list[str] = ["k = -1"]
        done: set[int] = set()
        compared = {_text(traces[0][q])}  # the first evaluation's: ``first`` compared it
        for index, values in enumerate(traces[1:], start=1):
            if values is None:  # numpy's alone from here: it decides where none matched
                body.append("k = _select(k == -1, -2, k)")
                break
            value = _text(values[q])
            if value in compared:
                continue
            compared.add(value)
            lines = need(value) - done
            done |= lines
            body += [t.lines[i] for i in sorted(lines)]
            body.append(f"k = _select((k == -1) & ({_same('o_i', values[q])}), {index}, k)")
        out[node] = "\n".join("        " + line for line in body)
    return out


_PREAMBLE = '''"""Generated by reference.batch.explain_kernel from legal.evaluate_step ({fmt}, model
{model}).  Do not edit: it is regenerated whenever that code changes."""

''' + HELPERS + '''

@njit(error_model="numpy")
def _select(c, a, b):
    """ops.select of one value (a call: LLVM makes it a select instruction)."""
    return a if c else b
'''

_FUNCTIONS = {
    "first": ("w, b, x, t, lr, outs, which, pending", "range(w.shape[0])", _first_body,
              "Every case: the first admitted evaluation; which[j, i] = 0 where it gives row "
              "j's value, else -1; pending[i]: UNEXPLAINED | LR_OUTSIDE bits."),
}


def source(fmt: "Format | str", model: "Model | str") -> str:
    """The kernel module for ``fmt`` and ``model`` (rows: ``REQUIRED``): functions ``first``
    and one ``explain_NODE`` per node of ``REQUIRED``."""
    fmt, model = get_format(fmt), get_model(model)
    if fmt.p >= 53:
        raise ValueError(f"the compiled exact level is for formats narrower than binary64, "
                         f"not {fmt.name}")
    names = REQUIRED
    parts = [_PREAMBLE.format(fmt=fmt.name, model=model.name)]
    for node, body in _quantity_functions(fmt, model, names).items():
        parts.append(f'''

@njit(cache=True, nogil=True, error_model="numpy")
def explain_{node}({", ".join(INPUTS)}, o, out):
    """Node {node}, per case: the first admitted evaluation after the first giving o[i] (-1:
    none; -2: numpy's evaluations come first)."""
    for i in range(w.shape[0]):
''' + "\n".join(f"        {k}_i = {k}[i]" for k in INPUTS) + "\n        o_i = o[i]\n"
                     + body + "\n        out[i] = k\n")
    for name, (args, loop, body, doc) in _FUNCTIONS.items():
        t = SharingTracer()
        t.indent = 2
        body(fmt, model, names, t)
        parts.append(f'''

@njit(cache=True, nogil=True, error_model="numpy")
def {name}({args}):
    """{doc}"""
    for i in {loop}:
''' + "\n".join(t.lines) + "\n")
    return "".join(parts)


def kernels(fmt: "Format | str", model: "Model | str") -> Any:
    """The compiled functions (``FUNCTIONS``) for ``fmt`` and ``model``, or None without
    numba."""
    return generated("explain", fmt, model, source)


def _explain_required(K: Any, fmt: Format, model: Model, args: list, block: np.ndarray,
                      which: np.ndarray) -> "np.ndarray | None":
    """Fills ``which`` for the rows of ``REQUIRED``; returns the cases where some value is not
    the first evaluation's, or None where some lr is not a value of the format."""
    n = block.shape[1]
    pending = np.empty(n, dtype=np.uint8)
    K.first(*args, block, which, pending)
    if (pending & LR_OUTSIDE).any():
        return None
    left = np.flatnonzero(pending.view(np.bool_))  # (0 or UNEXPLAINED now: 10x numpy's uint8)
    if len(left):
        fallback = np.zeros(n, dtype=np.bool_)
        for j, q in enumerate(REQUIRED):  # each node's loop on its values left, gathered
            rows = left[which[j, left] < 0]
            if len(rows) == 0:
                continue
            k = np.empty(len(rows), dtype=np.int64)
            getattr(K, f"explain_{NODE_OF[q]}")(*(a[rows] for a in args), block[j, rows], k)
            numpy_decides = k == -2
            which[j, rows] = np.where(numpy_decides, -1, k)
            fallback[rows[numpy_decides]] = True
        if fallback.any():  # an evaluation of numpy's alone comes before the answer
            idx = np.flatnonzero(fallback)
            sub = explain_batch(fmt, {k: a[idx] for k, a in zip(INPUTS, args)}, REQUIRED,
                                block[:, idx], model)
            which[:, idx] = sub.which
    return left


def explain_compiled(fmt: "Format | str", cols: Mapping[str, np.ndarray], names: Sequence[str],
                     block: np.ndarray, model: "Model | str" = "ieee",
                     engine: str = "auto") -> Explained:
    """``legal.explain_batch``, the same result, from the compiled loops where they apply
    (float16, bfloat16, float32 with numba, the rows ``REQUIRED`` or ``ROWS``; ``engine``:
    "compiled" compiles them if need be, "auto" uses them once compiled (in this process or
    numba's cache), "numpy" never); ``others`` lists the cases where some value is not the
    first evaluation's."""
    fmt, model = get_format(fmt), get_model(model)
    names = tuple(names)
    K = None
    if engine != "numpy" and fmt.p < 53 and names in (REQUIRED, ROWS):  # (binary64 work)
        K = kernels(fmt, model)
        if engine == "auto" and not compiled(K, FUNCTIONS):
            K = None  # (its compilation takes 3 to 25 s: worth it for large sweeps only)
    if K is None:
        return explain_batch(fmt, cols, names, block, model)
    n = block.shape[1]
    args = [np.ascontiguousarray(cols[k], dtype=np.float64) for k in INPUTS]
    if block.shape[0] != len(names) or any(a.shape != (n,) for a in args):
        raise ValueError(f"{len(names)} rows of {n} values and five input arrays of {n} were "
                         f"expected, not {block.shape} and {[a.shape for a in args]}")
    block = np.ascontiguousarray(block, dtype=np.float64)
    m = len(REQUIRED)
    which = np.empty((len(names), n), dtype=np.int16)
    others = _explain_required(K, fmt, model, args, block[:m], which[:m])
    if others is None:  # other admitted evaluations (lr-rounded ones): numpy's path
        return explain_batch(fmt, cols, names, block, model)
    if len(names) > m:  # dL_dy, the node of dL_db: the same answer where the same bits
        g = REQUIRED.index("dL_db")
        if np.array_equal(block[m].view(np.uint64), block[g].view(np.uint64)):
            which[m] = which[g]
        else:
            again = block[:m].copy()
            again[g] = block[m]
            twin = np.empty((m, n), dtype=np.int16)
            more = _explain_required(K, fmt, model, args, again, twin)
            which[m] = twin[g]
            others = np.union1d(others, more[twin[g, more] != 0])
    return Explained(names, admitted(fmt, model, lr_in_format=True), which, others=others)


def main(argv: "list[str] | None" = None) -> int:
    return print_source("reference.batch.explain_kernel", source, argv)


if __name__ == "__main__":
    sys.exit(main())
