"""Rigorous forward error bounds for the step, per quantity, format and evaluation model.

Standard model with underflow, in its sharpest form: a rounded operation whose exact result
(on the computed operands) has magnitude at most M is off by at most

    h(M) = ulp(M) / 2,   ulp(M) = 2**(max(floor(log2 M), emin) - p + 1)

which is <= u*M in the normal range and equals eta (half the smallest subnormal) in the
subnormal range; a sum is exact when M < 2**emin.  Operand errors are propagated exactly
(``|a^ b^ - a b| <= |a| Eb + |b| Ea + Ea Eb``), so each quantity gets an upper bound ``E`` on
``|computed - exact|`` valid for every evaluation its :class:`Model` admits.  ``spec/tolerances.md``
derives the same bounds step by step.

Arithmetic: float64 is rounded up by a relative slack of 2**-40 where every term provably
stays in float64's normal range (float16, bfloat16, float32); float64 bounds are exact
``fractions.Fraction``.  A bound never rounds below the true error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Mapping, Union

import mpmath

from .exact import Binary, exact_step, to_mpf
from .formats import FLOAT32, Format, get_format, to_fraction

__all__ = [
    "Model", "OutOfDomain", "Bound", "IEEE", "STRICT", "MODELS", "WIDE_FORMAT", "NODES",
    "get_model", "step_bounds", "case_bounds",
]

#: Where float16/bfloat16 work may be carried out ("work runs in float32").
WIDE_FORMAT = FLOAT32

#: Which node of the evaluation each quantity is.
NODES = {"y": "y", "dL_dy": "g", "loss": "loss", "dL_dw": "gw", "dL_db": "g",
         "w_new": "w_new", "b_new": "b_new"}


@dataclass(frozen=True)
class Model:
    """A declared evaluation model: the set of evaluations a bound must cover.

    pow_square:  the square r*r may be off by up to one ulp (CPython's ``**`` calls ``pow``,
                 which is not correctly rounded); False: r*r is correctly rounded.
    wide_work:   float16/bfloat16 operations may be computed in float32 and rounded to the format
                 after each operation (double rounding) or only when a result is stored.
    ftz:         subnormal inputs may be read as zero and subnormal results flushed to zero.
    lr_binary64: lr may be any binary64 value while the parameters are narrower; the
                 implementation may round it to the parameter format first or use it as given.

    Fused multiply-add in the forward pass and in the update is always admitted: its single
    rounding is covered by the bound of the two-rounding evaluation.
    """

    name: str
    pow_square: bool = True
    wide_work: bool = True
    ftz: bool = False
    lr_binary64: bool = False

    def with_options(self, **options: bool) -> "Model":
        name = "+".join([self.name] + [k.replace("_", "-") for k, v in options.items() if v])
        return replace(self, name=name, **options)

    def describe(self) -> str:
        parts = ["r*r within one ulp (pow)" if self.pow_square else "r*r correctly rounded",
                 "float16/bfloat16 work may run in float32" if self.wide_work
                 else "every operation rounds to the format",
                 "fused multiply-add allowed"]
        if self.ftz:
            parts.append("subnormals may be flushed to zero")
        if self.lr_binary64:
            parts.append("lr may be a binary64 value, used as given or rounded")
        return "; ".join(parts)


IEEE = Model("ieee")
STRICT = Model("strict", pow_square=False, wide_work=False)
MODELS: dict[str, Model] = {
    m.name: m
    for m in (IEEE, STRICT, IEEE.with_options(ftz=True), IEEE.with_options(lr_binary64=True),
              IEEE.with_options(ftz=True, lr_binary64=True))
}


def get_model(model: "Model | str") -> Model:
    if isinstance(model, Model):
        return model
    try:
        return MODELS[model]
    except KeyError:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}") from None


@dataclass(frozen=True)
class OutOfDomain:
    """A quantity whose evaluation may overflow the format: no finite bound is claimed."""

    reason: str

    def __bool__(self) -> bool:  # never usable as a number
        return False


Bound = Union[Fraction, float, OutOfDomain]

_SLACK = 2.0**-40  # relative: covers <= 2**13 float64 roundings of nonnegative normal numbers


class _Rounding:
    """The rounding-error terms of one model in one format, in float or exact arithmetic."""

    def __init__(self, fmt: Format, model: Model, exact: bool) -> None:
        self.fmt, self.model, self.exact = fmt, model, exact
        self.num = Fraction if exact else float
        self.wide = model.wide_work and fmt.p < WIDE_FORMAT.p
        self.tiny = self.num(fmt.smallest_normal)  # 2**emin
        self.tiny32 = self.num(WIDE_FORMAT.smallest_normal)
        self.grow = 1 if exact else 1 + _SLACK  # to inflate a float magnitude before ulp()
        self.shrink = 1 if exact else 1 - _SLACK

    def half_ulp(self, fmt: Format, m) -> "Fraction | float":
        """ulp(M)/2 in ``fmt``, for any 0 <= M (a power of two, exact in both arithmetics)."""
        if m <= 0:
            return self.num(0)
        if self.exact:
            n, d = m.numerator, m.denominator
            e = n.bit_length() - d.bit_length()
            if (n << max(0, -e)) < (d << max(0, e)):
                e -= 1
        else:
            e = math.frexp(m * self.grow)[1] - 1
        e = max(e, fmt.emin) - fmt.p  # half an ulp
        return Fraction(2) ** e if self.exact else math.ldexp(1.0, e)

    def term(self, kind: str, upper, lower):
        """Bound on the rounding error of one operation whose exact result on the computed
        operands lies in [lower, upper] in magnitude.  kind: mul, add, half, sq."""
        fmt = self.fmt
        if self.wide:
            # float32 first (sums and halvings exact there unless float32-subnormal) ...
            if kind == "add" and upper * self.grow < self.tiny32:
                e32 = self.num(0)
            elif kind == "half" and lower * self.shrink >= self.tiny32:
                e32 = self.num(0)
            else:
                e32 = self.half_ulp(WIDE_FORMAT, upper)
            # ... then the format, whose operand is now a float32 value: never exact for free
            e = e32 + self.half_ulp(fmt, upper + e32)
        elif kind == "add" and upper * self.grow < self.tiny:
            e = self.num(0)  # IEEE sums of format values are exact in the subnormal range
        elif kind == "half":
            e = self.num(0) if lower * self.shrink >= self.tiny else self.half_ulp(fmt, self.tiny)
        else:
            e = self.half_ulp(fmt, upper)
        if kind == "sq" and self.model.pow_square:
            e = 2 * e  # within one ulp instead of half an ulp
        if self.model.ftz:
            e = max(e, min(upper, self.tiny))  # a flushed result |v| < 2**emin becomes 0
        return e


class _Chain:
    """Exact value and error bound of each node of the evaluation, op by op."""

    def __init__(self, rounding: _Rounding, exact_nodes: "dict | None" = None) -> None:
        self.r = rounding
        # in float arithmetic, node values are the exact values rounded to float64 (relative
        # error 2**-53 each), never values computed from rounded operands (cancellation)
        self.exact_nodes = exact_nodes
        self.num = rounding.num
        self.limit = self.num(rounding.fmt.largest_finite)
        self.values: dict = {}
        self.errors: dict = {}
        self.parts: dict = {}  # node -> (propagated operand error, rounding kind)

    def leaf(self, name: str, value, error) -> None:
        self.values[name], self.errors[name] = value, error

    def node(self, name: str, value, prop, kind: str, text: str, rounding_error=None) -> None:
        if self.exact_nodes is not None:
            value = self.exact_nodes[name]
        self.values[name] = value
        if isinstance(prop, OutOfDomain):
            self.errors[name] = prop
            return
        upper = abs(value) + prop
        lower = max(abs(value) - prop, self.num(0))
        if rounding_error is None:
            rounding_error = self.r.term(kind, upper, lower)
        self.parts[name] = (prop, kind)
        error = prop + rounding_error
        if not (upper + rounding_error) * self.r.grow <= self.limit:  # (nan/inf: out too)
            self.errors[name] = OutOfDomain(
                f"{text} may overflow {self.r.fmt.name}: |exact| + error bound = "
                f"{_text(upper + rounding_error)} > largest finite "
                f"{self.r.fmt.largest_finite:.6g}")
        else:
            self.errors[name] = error

    def operand_errors(self, *names):
        errs = [self.errors[n] for n in names]
        for e in errs:
            if isinstance(e, OutOfDomain):
                return e
        return errs

    def mul(self, name, a, b, text, kind="mul"):
        va, vb = self.values[a], self.values[b]
        errs = self.operand_errors(a, b)
        if isinstance(errs, OutOfDomain):
            return self.node(name, va * vb, errs, kind, text)
        ea, eb = errs
        self.node(name, va * vb, abs(va) * eb + abs(vb) * ea + ea * eb, kind, text)

    def add(self, name, a, b, text, sign=1):
        v = self.values[a] + sign * self.values[b]
        errs = self.operand_errors(a, b)
        self.node(name, v, errs if isinstance(errs, OutOfDomain) else errs[0] + errs[1], "add", text)

    def gradient(self, name, a):
        """dL/dr = r as autograd computes it, 0.5*(2*r): exact, but 2*r must not overflow."""
        self.values[name] = v = self.values[a]
        err = self.errors[a]
        if not isinstance(err, OutOfDomain) and not 2 * (abs(v) + err) * self.r.grow <= self.limit:
            err = OutOfDomain(
                f"autograd's 2*r may overflow {self.r.fmt.name}: 2*(|r| + error bound) = "
                f"{_text(2 * (abs(v) + err))} > largest finite {self.r.fmt.largest_finite:.6g}")
        self.errors[name] = err
        if a in self.parts:
            self.parts[name] = self.parts[a]

    def half(self, name, a, text):
        v = self.values[a] / 2
        errs = self.operand_errors(a)
        self.node(name, v, errs if isinstance(errs, OutOfDomain) else errs[0] / 2, "half", text)


def _admissible_roundings(fmt: Format, model: Model, value: Fraction) -> "Fraction | None":
    """The largest error any admitted evaluation makes rounding the exact ``value`` once
    (None when a rounding overflows)."""
    rounded = fmt.round(value)
    candidates = [rounded]
    if model.wide_work and fmt.p < WIDE_FORMAT.p:
        wide = WIDE_FORMAT.round(value)
        candidates += [wide, fmt.round(wide)]  # kept in float32; rounded through float32
    if model.ftz and (abs(rounded) < fmt.smallest_normal or abs(value) < fmt.smallest_normal):
        candidates.append(0.0)  # a subnormal result (here or in float32) flushed to zero
    if any(math.isinf(c) for c in candidates):
        return None
    return max(abs(to_fraction(c) - value) for c in candidates)


def case_bounds(
    fmt: "Format | str",
    inputs: Mapping[str, Binary],
    model: "Model | str" = IEEE,
    *,
    exact_values: "Mapping[str, Fraction] | None" = None,
    computed: "Mapping[str, float] | None" = None,
    exact_arithmetic: "bool | None" = None,
) -> dict[str, Bound]:
    """Error bound of every quantity for one case ``inputs`` = {w, b, x, t, lr}.

    A-priori (from exact values) unless ``computed`` (an implementation's outputs) is given:
    then the rounding term of each returned result uses ``min(|exact| + propagated error,
    |computed|)`` as its magnitude, which is valid (a rounded result is at most that far from
    its operand-exact value) and can only tighten the bound.
    Returns, per quantity, an upper bound (``float`` or ``Fraction``) or :class:`OutOfDomain`.
    """
    fmt, model = get_format(fmt), get_model(model)
    raw = {k: inputs[k] for k in ("w", "b", "x", "t", "lr")}
    for name in ("w", "b", "x", "t"):
        fmt.check(float(raw[name]), name)
    lr = to_fraction(raw["lr"])
    lr_rounded = fmt.round(lr)
    lr_in_format = math.isfinite(lr_rounded) and to_fraction(lr_rounded) == lr
    if not lr_in_format and not model.lr_binary64:
        raise ValueError(
            f"lr = {float(lr)!r} is not a {fmt.name} value; round it to {fmt.name} first, "
            "or declare the lr-binary64 option (model 'ieee+lr-binary64')")
    if exact_arithmetic is None:
        exact_arithmetic = not _float_safe(fmt)
    rounding = _Rounding(fmt, model, exact_arithmetic)
    num = rounding.num
    chain = _Chain(rounding, None if exact_arithmetic else _exact_nodes(raw))
    # inputs are values of the format (lr: of binary64), exact in float64 and in Fraction
    vals = {k: num(float(v)) for k, v in raw.items() if k != "lr"}
    vals["lr"] = num(lr) if exact_arithmetic else float(raw["lr"])
    tiny = num(fmt.smallest_normal)

    def flush_error(v):
        return abs(v) if model.ftz and 0 < abs(v) < tiny else num(0)

    for name in ("w", "b", "x", "t"):
        chain.leaf(name, vals[name], flush_error(vals[name]))
    lr_error = to_fraction(flush_error(vals["lr"]))
    if not lr_in_format:
        lr_rounding = _admissible_roundings(fmt, model, lr)
        if lr_rounding is None:
            raise ValueError(f"lr = {float(lr)!r} overflows {fmt.name}; it cannot be used there")
        lr_error = max(lr_error, lr_rounding)
    chain.leaf("lr", vals["lr"], num(lr_error) if exact_arithmetic else _up(lr_error))

    # p = w*x: both operands exact (unless flushed), so its rounding error is known exactly;
    # in float arithmetic the product of two narrow-format values is exact (<= 48 bits)
    p_exact = vals["w"] * vals["x"]
    if chain.errors["w"] == 0 and chain.errors["x"] == 0:
        e = _admissible_roundings(fmt, model, to_fraction(p_exact))
        if e is None:
            chain.values["p"] = num(p_exact)
            chain.errors["p"] = OutOfDomain(
                f"w*x = {_text(p_exact)} overflows {fmt.name} (largest finite "
                f"{fmt.largest_finite:.6g})")
        else:
            chain.node("p", num(p_exact), num(0), "mul", "w*x",
                       rounding_error=num(e) if exact_arithmetic else _up(e))
    else:
        chain.mul("p", "w", "x", "w*x")
    chain.add("y", "p", "b", "y = w*x + b")
    chain.add("r", "y", "t", "r = y - t", sign=-1)
    chain.mul("sq", "r", "r", "r*r", kind="sq")
    chain.half("loss", "sq", "loss = r*r/2")
    chain.gradient("g", "r")
    chain.mul("gw", "g", "x", "dL_dw = r*x")
    chain.mul("lgw", "lr", "gw", "lr*dL_dw")
    chain.add("w_new", "w", "lgw", "w_new = w - lr*dL_dw", sign=-1)
    chain.mul("lgb", "lr", "g", "lr*dL_db")
    chain.add("b_new", "b", "lgb", "b_new = b - lr*dL_db", sign=-1)

    if exact_values is not None:  # the chain's exact values must be the reference's
        for q, node in NODES.items():
            if num(to_fraction(exact_values[q])) != chain.values[node] and exact_arithmetic:
                raise AssertionError(f"exact {q} disagrees with the bound's own exact value")

    out: dict[str, Bound] = {}
    for q, node in NODES.items():
        err = chain.errors[node]
        if not isinstance(err, OutOfDomain) and computed is not None and q in computed:
            err = _tightened(chain, rounding, node, computed[q], err)
        if not isinstance(err, OutOfDomain) and not exact_arithmetic:
            err = err * (1 + _SLACK)  # every float bound is rounded up by the slack
        out[q] = err
    return out


def _tightened(chain: _Chain, rounding: _Rounding, node: str, computed, bound):
    try:
        c = float(computed)
    except (TypeError, ValueError):
        return bound
    if not math.isfinite(c) or c == 0.0 or node not in chain.parts:
        return bound  # a zero result may be an underflow: its error is not bounded by h(0) = 0
    prop, kind = chain.parts[node]
    v = chain.values[node]
    upper = abs(v) + prop
    lower = max(abs(v) - prop, rounding.num(0))
    # A result rounded to nearest is within half an ulp *of the result* too (its ulp is never
    # smaller than the exact value's).  Through float32 first, the float32 value z is within
    # h_F(|c|) of c, so |c| + h_F(|c|) bounds the magnitude seen by the first rounding.
    c_mag = rounding.num(abs(c)) * rounding.grow
    if rounding.wide:
        c_mag += rounding.half_ulp(rounding.fmt, c_mag)
    term = rounding.term(kind, min(upper, c_mag), lower)
    if rounding.model.ftz:  # a flushed result reads 0: use the a-priori magnitude for that
        term = max(term, min(upper, rounding.tiny))
    return min(bound, prop + term)


def _exact_nodes(raw: Mapping[str, Binary]) -> dict[str, float]:
    """Every node's exact value (mpmath, exact operations), rounded to the nearest float64."""
    w, b, x, t, lr = (to_mpf(raw[k]) for k in ("w", "b", "x", "t", "lr"))
    mul = lambda u, v: mpmath.fmul(u, v, exact=True)  # noqa: E731
    sub = lambda u, v: mpmath.fsub(u, v, exact=True)  # noqa: E731
    p = mul(w, x)
    y = mpmath.fadd(p, b, exact=True)
    r = sub(y, t)
    sq = mul(r, r)
    gw = mul(r, x)
    lgw, lgb = mul(lr, gw), mul(lr, r)
    nodes = {"p": p, "y": y, "r": r, "sq": sq, "loss": mpmath.ldexp(sq, -1), "gw": gw,
             "lgw": lgw, "w_new": sub(w, lgw), "lgb": lgb, "b_new": sub(b, lgb)}
    return {k: float(v) for k, v in nodes.items()}


def _text(q) -> str:
    """A magnitude for a message, also beyond float64's range."""
    try:
        return f"{float(q):.6g}"
    except OverflowError:
        q = to_fraction(q)
        return f"about 2^{q.numerator.bit_length() - q.denominator.bit_length()}"


def _up(q: Fraction) -> float:
    """A float >= q (q >= 0)."""
    f = float(q)
    return f if Fraction(f) >= q else math.nextafter(f, math.inf)


def _float_safe(fmt: Format) -> bool:
    """True when every term of a bound stays in float64's normal range (see module doc)."""
    return fmt.emax <= 127 and fmt.emin >= -126


def step_bounds(
    fmt: "Format | str", w: Binary, b: Binary, x: Binary, t: Binary, lr: Binary,
    model: "Model | str" = IEEE,
) -> dict[str, Bound]:
    """A-priori bounds of every quantity for one case, cross-checked against the reference."""
    inputs = {"w": w, "b": b, "x": x, "t": t, "lr": lr}
    return case_bounds(fmt, inputs, model, exact_values=exact_step(w, b, x, t, lr).as_fractions())
