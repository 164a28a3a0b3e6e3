"""The exact reference, the bounds and the verdict on arrays of cases (numpy, vectorised).

The scalar path (``exact``, ``bounds``, ``properties.within_bounds``) costs about a millisecond
per case; this module gives the same verdict for millions of cases per second.

Exact values.  Every node of the step (p = w*x, y, r, r*r, r*x, lr*r*x, w', lr*r, b') is carried
as an unevaluated sum ``hi + lo`` of two numbers of a *work* type plus a rigorous bound ``delta``
on what that pair leaves out: error-free transformations (TwoSum, Veltkamp/Dekker TwoProduct)
make every sum and product exact except the one rounding where a pair is folded back into two
terms, and that rounding's residual is computed (TwoSum) or bounded (``|fl(a*b) - a*b| <= u|fl|``)
per case.  The work type is binary64 for float16, bfloat16 and float32 (their values, products
of three of them and all partial products lie in binary64's normal range, 2**-596 .. 2**386) and
x87 extended precision (``np.longdouble``, 64 bits, exponents to +-16382) for float64, whose
products of three values span 2**-3222 .. 2**3072.  ``delta`` is at most a few ``u_work**2``
times the magnitudes involved and is zero wherever the step is exact in the work type; it is far
below every rounding term of the bound (``>= 2**-p`` times the same magnitudes, or the format's
eta), by a factor of at least 2**70 for the narrow formats and 2**60 for float64.

Bounds.  The chain of ``bounds._Chain`` for the models without flush-to-zero and with lr in the
format (``ieee`` and ``strict``), op for op in the work type, node values being the ``hi`` parts
(within ``2**-52`` of the exact values).  In binary64 the result is rounded up by the scalar
float path's slack (2**-40), so the two bounds agree to ~1e-15.  In extended precision (float64,
whose scalar bounds are exact rationals) every bound operation is checked with an error-free
transformation: where none rounded, the bound *is* the exact rational one; elsewhere it is
rounded up by 2**-56; and a binade that the node's ``delta`` leaves undecided is flagged
(ambiguous: the bound may then be up to twice the exact one).  The first product's rounding
error is computed exactly per case, as the scalar path does.

Verdict.  A quantity in the bounded domain fails when the returned value is not finite, not a
value of the format, or when ``|computed - exact|`` exceeds the bound plus the reference's own
error (exact TwoSum residuals and ``delta``).  Where the error lies between the lowest and the
highest value the scalar bound can have (narrow formats: within 2**-45 of the bound; float64:
within the slack of an inexact bound, or above a quarter of an ambiguous one), the scalar
mpmath path decides, so the verdict is the scalar verdict.  ``tests/test_batch.py`` and
``neuronspec crosscheck`` compare the two case by case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .bounds import NODES, WIDE_FORMAT, Model, get_model
from .formats import FLOAT32, Format, get_format

__all__ = ["Work", "work_for", "round_to_format", "exact_nodes", "batch_bounds", "Verdict",
           "check_batch", "QUANTITIES", "INPUTS"]

#: The quantities a batch implementation returns (dL_dy optional), and the inputs.
QUANTITIES = ("y", "loss", "dL_dw", "dL_db", "w_new", "b_new")
INPUTS = ("w", "b", "x", "t", "lr")


@dataclass(frozen=True)
class Work:
    """The arithmetic the reference runs in for one format."""

    dtype: type
    precision: int  # significand bits
    slack: float  # relative slack of the bound arithmetic (covers its own roundings)

    @property
    def u(self):
        return self.dtype(2.0) ** -self.precision

    @property
    def splitter(self):  # Veltkamp: a = hi + lo with hi, lo of <= ceil(P/2) bits each
        return self.dtype(2.0) ** ((self.precision + 1) // 2) + 1


BINARY64 = Work(np.float64, 53, 2.0**-40)  # the scalar path's slack, for equal bounds
EXTENDED = Work(np.longdouble, 64, 2.0**-56)  # > 30 roundings of 2**-64: covers the chain


def work_for(fmt: Format) -> Work:
    """binary64 where a product of three format values and the bound terms stay normal there,
    else x87 extended precision (float64); a clear error where the platform lacks it."""
    if fmt.emax <= 127 and fmt.emin >= -126 and 3 * fmt.p <= 2 * 53:
        return BINARY64
    info = np.finfo(np.longdouble)
    if info.nmant < 63 or info.maxexp < 16384:
        raise RuntimeError(
            f"the batch reference for {fmt.name} needs x87 extended precision (np.longdouble "
            f"with 64 significand bits); this platform's has {info.nmant + 1}: use the scalar "
            "path (neuronspec check) instead")
    return EXTENDED


# ---- error-free transformations (exact unless they overflow, which the ranges above exclude)

def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _two_prod(a, b, splitter):
    p = a * b
    c = splitter * a
    ah = c - (c - a)
    al = a - ah
    c = splitter * b
    bh = c - (c - b)
    bl = b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _add(h, l, v):
    """(h + l) + v as a pair and the exact magnitude of what the pair leaves out."""
    s, e = _two_sum(h, v)
    z, ze = _two_sum(e, l)
    hi, lo = _two_sum(s, z)
    return hi, lo, np.abs(ze)


def _mul(h, l, v, work: Work):
    """(h + l) * v as a pair and a bound on what the pair leaves out."""
    p, pe = _two_prod(h, v, work.splitter)
    q = l * v  # off by at most u|q|
    z, ze = _two_sum(pe, q)
    hi, lo = _two_sum(p, z)
    return hi, lo, np.abs(ze) + work.u * 2 * np.abs(q)


def _square(h, l, work: Work):
    """(h + l)**2 as a pair and a bound on what the pair leaves out."""
    p, pe = _two_prod(h, h, work.splitter)
    c = 2 * h * l  # off by at most u|c|; l*l is left out
    z, ze = _two_sum(pe, c)
    hi, lo = _two_sum(p, z)
    return hi, lo, np.abs(ze) + work.u * 2 * np.abs(c) + 2 * l * l


def _pow2floor(a, work: Work):
    """The largest power of two <= a (a >= 0; 0 for 0), elementwise."""
    if work.dtype is np.float64:
        bits = np.ascontiguousarray(a, dtype=np.float64).view(np.uint64)
        return (bits & np.uint64(0x7FF0000000000000)).view(np.float64)
    m, e = np.frexp(a)
    return np.where(a > 0, np.ldexp(work.dtype(0.5), e), work.dtype(0))


def round_to_format(fmt: Format, hi, lo=None, work: "Work | None" = None):
    """``hi + lo`` rounded to nearest-even in ``fmt`` (gradual underflow, overflow to inf),
    elementwise, as work-type values.  ``lo`` (default 0) must be within half a work ulp of 0
    relative to ``hi``: it only breaks ties of ``hi``."""
    work = work or work_for(fmt)
    dt = work.dtype
    hi = np.asarray(hi, dtype=dt)
    quantum = np.maximum(_pow2floor(np.abs(hi), work), dt(fmt.smallest_normal)) * dt(2.0) ** (1 - fmt.p)
    # hi + big lies in a binade whose spacing is the quantum: the work type's own rounding to
    # nearest-even is the format's, and ``big`` is an even multiple of the quantum
    big = quantum * (dt(1.5) * dt(2.0) ** (work.precision - 1))
    with np.errstate(invalid="ignore", over="ignore"):
        c = (hi + big) - big
        if lo is not None:  # a tie of hi broken by lo: round away from hi's nearest
            d = hi - c
            tie = (np.abs(d) * 2 == quantum) & (lo != 0) & (np.sign(lo) == np.sign(d))
            c = np.where(tie, c + 2 * d, c)
        huge = ~(np.abs(c) <= dt(fmt.largest_finite))  # (also where ``big`` overflowed: nan)
        c = np.where(huge, np.copysign(dt(np.inf), hi), c)
    return np.where(np.isfinite(hi), c, hi)


@dataclass
class Node:
    hi: np.ndarray
    lo: np.ndarray
    delta: np.ndarray  # |hi + lo - exact| <= delta


def exact_nodes(fmt: Format, w, b, x, t, lr) -> dict[str, Node]:
    """Every node of the step, exactly up to ``delta`` (see the module doc), in the work type."""
    work = work_for(fmt)
    dt = work.dtype
    w, b, x, t, lr = (np.asarray(v, dtype=dt) for v in (w, b, x, t, lr))
    zero = np.zeros_like(w)
    if work is BINARY64:  # a product of two format values is exact in binary64
        ph, pl = w * x, zero
    else:
        ph, pl = _two_prod(w, x, work.splitter)
    out = {"p": Node(ph, pl, zero)}
    yh, yl, e = _add(ph, pl, b)
    out["y"] = Node(yh, yl, e)
    rh, rl, e = _add(yh, yl, -t)
    out["r"] = r = Node(rh, rl, out["y"].delta + e)
    r_mag = np.abs(rh) * (1 + 4 * work.u)
    sh, sl, e = _square(rh, rl, work)
    out["sq"] = sq = Node(sh, sl, 2 * r_mag * r.delta + r.delta * r.delta + e)
    out["loss"] = Node(sq.hi / 2, sq.lo / 2, sq.delta / 2)
    gh, gl, e = _mul(rh, rl, x, work)
    out["gw"] = gw = Node(gh, gl, np.abs(x) * r.delta + e)
    lh, ll, e = _mul(gh, gl, lr, work)
    out["lgw"] = lgw = Node(lh, ll, np.abs(lr) * gw.delta + e)
    h, l, e = _add(-lh, -ll, w)
    out["w_new"] = Node(h, l, lgw.delta + e)
    lh, ll, e = _mul(rh, rl, lr, work)
    out["lgb"] = lgb = Node(lh, ll, np.abs(lr) * r.delta + e)
    h, l, e = _add(-lh, -ll, b)
    out["b_new"] = Node(h, l, lgb.delta + e)
    up = 1 + 8 * work.u  # the deltas' own roundings
    for node in out.values():
        node.delta = node.delta * up
    out["g"] = out["r"]
    return out


class _Terms:
    """Vectorised ``bounds._Rounding.term`` for one format, model and work type.

    Magnitudes are plain arrays in binary64, inflated by the slack before an ulp is taken, as
    the scalar float path does.  In extended precision (float64, whose scalar bounds are exact
    rationals) a magnitude is a pair (s, e) with s + e >= the exact magnitude, so that a value
    just below a power of two (b = 1, b' = 1 - 2**-300) gets the binade below, as exactly."""

    def __init__(self, fmt: Format, model: Model, work: Work) -> None:
        dt = work.dtype
        self.fmt, self.model, self.work, self.dt = fmt, model, work, dt
        self.pairs = work is EXTENDED
        self.wide = model.wide_work and fmt.p < WIDE_FORMAT.p
        self.tiny = dt(fmt.smallest_normal)
        self.tiny32 = dt(FLOAT32.smallest_normal)
        self.grow = dt(1) + dt(work.slack)
        self.shrink = dt(1) - dt(work.slack)
        self.zero = dt(0)
        self.inexact = np.zeros((), dtype=bool)  # pairs mode: some bound term was rounded
        self.ambiguous = np.zeros((), dtype=bool)  # pairs mode: a binade within delta

    def magnitudes(self, node: Node, value, prop, kind: str):
        """(upper, lower) of the exact result of an operation on the computed operands."""
        if not self.pairs:
            mag = np.abs(value)
            return mag + prop, np.maximum(mag - prop, self.zero)
        # |hi + lo| +- prop as (s, e): s + e exact and e's sign exact (three-term TwoSums).
        # Where the exact magnitude may lie on either side of a power of two that decides the
        # term (within the node's delta of it), the decision is ambiguous: the bound may then
        # be up to twice the exact one, and the verdict sends values near it to the scalar
        # path.  The upper magnitude decides a binade (all kinds but "half"); the lower one
        # only "half"'s comparison with the smallest normal.
        m = np.abs(node.hi)
        z = node.lo * np.sign(node.hi)
        uncertain = node.delta > 0
        s1, s1e = _two_sum(z, prop)
        s, e = _two_sum(m, s1)
        e = e + s1e
        if kind != "half":
            self.ambiguous |= uncertain & (np.abs(e) <= node.delta) & (_pow2floor(s, self.work) == s)
        upper = (s, e + node.delta)
        s1, s1e = _two_sum(z, -prop)
        s, e = _two_sum(m, s1)
        e = e + s1e
        if kind == "half":
            self.ambiguous |= uncertain & (np.abs(e) <= node.delta) & (
                (s == self.tiny) | (s == self.tiny32))
        e = e - node.delta
        neg = (s < 0) | ((s == 0) & (e < 0))
        return upper, (np.where(neg, self.zero, s), np.where(neg, self.zero, e))

    def add(self, a, b):
        if not self.pairs:
            return a + b
        s, e = _two_sum(a, b)
        self.inexact |= e != 0
        return s

    def mul(self, a, b):
        if not self.pairs:
            return a * b
        p, e = _two_prod(a, b, self.work.splitter)
        self.inexact |= e != 0
        return p

    def floor2(self, m):
        """Largest power of two <= the magnitude (0 for 0)."""
        if not self.pairs:
            return _pow2floor(m * self.grow, self.work)
        s, e = m
        f = _pow2floor(s, self.work)
        return np.where((f == s) & (e < 0), f / 2, f)

    def below(self, m, limit):  # magnitude < limit, surely
        if not self.pairs:
            return m * self.grow < limit
        s, e = m
        return (s < limit) | ((s == limit) & (e < 0))

    def at_least(self, m, limit):  # magnitude >= limit, surely
        if not self.pairs:
            return m * self.shrink >= limit
        s, e = m
        return (s > limit) | ((s == limit) & (e >= 0))

    def half_ulp(self, fmt: Format, m):
        e = np.maximum(self.floor2(m), self.dt(fmt.smallest_normal))
        positive = (m > 0) if not self.pairs else (m[0] > 0)
        return np.where(positive, e * self.dt(2.0) ** -fmt.p, self.zero)

    def term(self, kind: str, upper, lower):
        fmt = self.fmt
        if self.wide:  # (binary64 magnitudes only: the wide formats are narrow)
            e32 = self.half_ulp(WIDE_FORMAT, upper)
            if kind == "add":
                e32 = np.where(self.below(upper, self.tiny32), self.zero, e32)
            elif kind == "half":
                e32 = np.where(self.at_least(lower, self.tiny32), self.zero, e32)
            e = e32 + self.half_ulp(fmt, upper + e32)
        elif kind == "add":
            e = np.where(self.below(upper, self.tiny), self.zero, self.half_ulp(fmt, upper))
        elif kind == "half":
            e = np.where(self.at_least(lower, self.tiny), self.zero,
                         self.dt(2.0) ** (fmt.emin - fmt.p))
        else:
            e = self.half_ulp(fmt, upper)
        if kind == "sq" and self.model.pow_square:
            e = 2 * e
        return e


def _first_product_error(fmt: Format, model: Model, p: Node, terms: _Terms):
    """max |c - w*x| over the admitted roundings c of the exact product, and whether any
    of them overflows (as ``bounds._admissible_roundings``)."""
    work = terms.work
    candidates = [round_to_format(fmt, p.hi, p.lo, work)]
    if model.wide_work and fmt.p < WIDE_FORMAT.p:
        wide = round_to_format(WIDE_FORMAT, p.hi, p.lo, work)
        candidates += [wide, round_to_format(fmt, wide, None, work)]
    err = np.zeros_like(p.hi)
    overflow = np.zeros(p.hi.shape, dtype=bool)
    for c in candidates:
        overflow |= ~np.isfinite(c)
        with np.errstate(invalid="ignore"):
            # c - hi - lo has at most p significant bits: exact in the work type (checked)
            d = terms.add(c, -p.hi)
            e = np.abs(terms.add(d, -p.lo))
        err = np.maximum(err, np.where(overflow, 0, e))
    return err, overflow


def batch_bounds(fmt: "Format | str", w, b, x, t, lr, model: "Model | str" = "ieee",
                 nodes: "dict[str, Node] | None" = None) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """A-priori bound of every quantity: ``{quantity: (bound, out_of_domain, exact,
    ambiguous)}`` arrays; ``exact``: the bound is the scalar path's exact rational bound itself
    (float64 only); ``ambiguous``: it may be up to twice that (a binade within delta)."""
    fmt, model = get_format(fmt), get_model(model)
    if model.ftz or model.lr_binary64:
        raise ValueError(f"the batch path covers the models ieee and strict, not {model.name}; "
                         "use the scalar path (neuronspec check --model ...) for it")
    work = work_for(fmt)
    dt = work.dtype
    if nodes is None:
        nodes = exact_nodes(fmt, w, b, x, t, lr)
    terms = _Terms(fmt, model, work)
    limit = dt(fmt.largest_finite)
    val = {k: nodes[k].hi for k in ("p", "y", "r", "sq", "loss", "gw", "lgw", "w_new", "lgb",
                                    "b_new")}
    ins = {k: np.asarray(v, dtype=dt) for k, v in zip(INPUTS, (w, b, x, t, lr))}
    err: dict = {}
    ood: dict = {}

    shape = val["p"].shape
    flags: dict = {}  # pairs mode: node -> some term of its bound (or an operand's) was rounded

    ambiguous: dict = {}

    def fresh():
        terms.inexact = np.zeros(shape, dtype=bool)
        terms.ambiguous = np.zeros(shape, dtype=bool)

    def node(name, value, prop, kind, bad, after, rounding=None):
        upper = np.abs(value) + prop
        if rounding is None:
            up, low = terms.magnitudes(nodes[name], value, prop, kind)
            rounding = terms.term(kind, up, low)
        err[name] = terms.add(prop, rounding)
        with np.errstate(invalid="ignore"):
            ood[name] = bad | ~((upper + rounding) * terms.grow <= limit)
        flags[name] = terms.inexact | flags[after] if after else terms.inexact
        ambiguous[name] = terms.ambiguous | ambiguous[after] if after else terms.ambiguous

    fresh()
    e_p, over = _first_product_error(fmt, model, nodes["p"], terms)
    node("p", val["p"], terms.zero, "mul", over, None, rounding=e_p)
    fresh()
    node("y", val["y"], err["p"], "add", ood["p"], "p")
    fresh()
    node("r", val["r"], err["y"], "add", ood["y"], "y")
    r_mag = np.abs(val["r"])
    fresh()
    if terms.pairs:  # |r| enters the bound: it must be the exact |r|
        terms.inexact |= (nodes["r"].lo != 0) | (nodes["r"].delta > 0)
    node("sq", val["sq"], terms.add(terms.mul(2 * r_mag, err["r"]), terms.mul(err["r"], err["r"])),
         "sq", ood["r"], "r")
    fresh()
    node("loss", val["loss"], err["sq"] / 2, "half", ood["sq"], "sq")
    err["g"], flags["g"], ambiguous["g"] = err["r"], flags["r"], ambiguous["r"]
    with np.errstate(invalid="ignore"):
        ood["g"] = ood["r"] | ~(2 * (r_mag + err["r"]) * terms.grow <= limit)
    fresh()
    node("gw", val["gw"], terms.mul(np.abs(ins["x"]), err["g"]), "mul", ood["g"], "g")
    fresh()
    node("lgw", val["lgw"], terms.mul(np.abs(ins["lr"]), err["gw"]), "mul", ood["gw"], "gw")
    fresh()
    node("w_new", val["w_new"], err["lgw"], "add", ood["lgw"], "lgw")
    fresh()
    node("lgb", val["lgb"], terms.mul(np.abs(ins["lr"]), err["g"]), "mul", ood["g"], "g")
    fresh()
    node("b_new", val["b_new"], err["lgb"], "add", ood["lgb"], "lgb")
    # rounded up by the slack; in extended precision only where some term was rounded
    if terms.pairs:
        return {q: (np.where(flags[n], err[n] * terms.grow, err[n]), ood[n],
                    ~flags[n] & ~ambiguous[n], ambiguous[n]) for q, n in NODES.items()}
    none = np.zeros(val["p"].shape, dtype=bool)
    return {q: (err[n] * terms.grow, ood[n], none, none) for q, n in NODES.items()}


@dataclass
class Verdict:
    """Per quantity, arrays over the cases: error/bound (nan outside the domain), violation,
    out of the bounded domain, and why a violation failed; ``resolved`` counts the values
    decided by the scalar path (an error too close to the bound to decide here)."""

    ratio: dict[str, np.ndarray]
    violation: dict[str, np.ndarray]
    out_of_domain: dict[str, np.ndarray]
    not_finite: dict[str, np.ndarray]
    not_in_format: dict[str, np.ndarray]
    resolved: int = 0
    resolved_by: dict = None  # quantity -> values decided by the scalar path


#: Narrow formats: errors this close to the bound (relatively) are decided by the scalar path
#: (the batch bound is the scalar bound up to ~1e-15: the same float chain).
BAND = 2.0**-45


def _scalar_decision(fmt: Format, case: tuple, quantity: str, value: float, model: Model,
                     cache: dict) -> "tuple[bool, float]":
    """(violation, error/bound) of one value by the scalar path (exact rationals)."""
    from fractions import Fraction

    from .bounds import case_bounds
    from .exact import exact_step

    if case not in cache:
        cache[case] = (case_bounds(fmt, dict(zip(INPUTS, case)), model),
                       exact_step(*case).as_fractions())
    bounds, exact = cache[case]
    err = abs(Fraction(value) - exact[quantity])
    b = Fraction(bounds[quantity])
    ratio = float(err / b) if b else (0.0 if err == 0 else float("inf"))
    return bool(err > b), ratio


def _kernel():
    """The compiled loop for the binary64 work type, or None without numba."""
    try:
        from . import batch_kernel
    except ImportError:
        return None
    return batch_kernel


def check_batch(fmt: "Format | str", cases: Mapping[str, np.ndarray],
                outputs: Mapping[str, np.ndarray], model: "Model | str" = "ieee",
                engine: str = "auto") -> Verdict:
    """The within-bounds verdict of ``properties.within_bounds`` for every case at once.

    ``cases``: arrays w, b, x, t, lr of format values; ``outputs``: the implementation's arrays
    of the quantities (dL_dy optional), any float dtype.  ``engine``: "numpy", "compiled"
    (numba; float16/bfloat16/float32) or "auto" (compiled where available)."""
    fmt, model = get_format(fmt), get_model(model)
    if model.ftz or model.lr_binary64:
        raise ValueError(f"the batch path covers the models ieee and strict, not {model.name}; "
                         "use the scalar path (neuronspec check --model ...) for it")
    work = work_for(fmt)
    kernel = _kernel() if engine in ("auto", "compiled") and work is BINARY64 else None
    if engine == "compiled" and kernel is None:
        raise RuntimeError("the compiled engine needs numba (pip install numba) and a format "
                           "narrower than float64")
    names = QUANTITIES + (("dL_dy",) if "dL_dy" in outputs else ())
    if kernel is not None:
        ratio, status = _run_kernel(kernel, fmt, model, cases, outputs, names)
        return _verdict_from_status(fmt, model, cases, outputs, names, ratio, status)
    return _check_numpy(fmt, model, work, cases, outputs, names)


def _run_kernel(kernel, fmt, model, cases, outputs, names):
    cols = [np.ascontiguousarray(cases[k], dtype=np.float64) for k in INPUTS]
    outs = np.empty((len(names), len(cols[0])), dtype=np.float64)
    for k, q in enumerate(names):
        outs[k] = outputs[q]
    ratio = np.empty_like(outs)
    status = np.empty(outs.shape, dtype=np.int8)
    kernel.verdict_kernel(*cols, outs, fmt.p, fmt.emin, fmt.largest_finite,
                          bool(model.wide_work and fmt.p < WIDE_FORMAT.p), bool(model.pow_square),
                          ratio, status)
    return ratio, status


def _verdict_from_status(fmt, model, cases, outputs, names, ratio, status) -> Verdict:
    from .batch_kernel import BEYOND, NEAR, NOT_FINITE, NOT_IN_FORMAT, OUT_OF_DOMAIN

    cache: dict = {}
    resolved = 0
    out = Verdict({}, {}, {}, {}, {}, 0, {})
    for k, q in enumerate(names):
        st, r = status[k], ratio[k].copy()
        bad = (st == BEYOND) | (st == NOT_FINITE) | (st == NOT_IN_FORMAT)
        out.resolved_by[q] = int(np.count_nonzero(st == NEAR))
        for i in np.flatnonzero(st == NEAR):
            case = tuple(float(np.asarray(cases[n])[i]) for n in INPUTS)
            bad[i], r[i] = _scalar_decision(fmt, case, q, float(outputs[q][i]), model, cache)
            resolved += 1
        out.ratio[q], out.violation[q] = r, bad
        out.out_of_domain[q] = st == OUT_OF_DOMAIN
        out.not_finite[q] = st == NOT_FINITE
        out.not_in_format[q] = st == NOT_IN_FORMAT
    out.resolved = resolved
    return out


def _check_numpy(fmt, model, work, cases, outputs, names) -> Verdict:
    dt = work.dtype
    args = [np.asarray(cases[k], dtype=dt) for k in INPUTS]
    nodes = exact_nodes(fmt, *args)
    bounds = batch_bounds(fmt, *args, model=model, nodes=nodes)
    ratio, violation, ood_out, nonfinite, notfmt = {}, {}, {}, {}, {}
    cache: dict = {}
    resolved = 0
    resolved_by: dict = {}
    for q in names:
        node = nodes[NODES[q]]
        bound, ood, exact_bound, ambiguous = bounds[q]
        c64 = np.asarray(outputs[q], dtype=np.float64)  # every format value is binary64
        c = c64.astype(dt)
        finite = np.isfinite(c)
        with np.errstate(invalid="ignore", over="ignore"):
            in_format = ~finite | (round_to_format(fmt, c, None, work) == c)
            # |c - exact| = |d| up to ``reference_error``: exact residuals plus the node's delta
            d1, d1e = _two_sum(c, -node.hi)
            z, ze = _two_sum(d1e, -node.lo)
            d, de = _two_sum(d1, z)
            err = np.abs(d)
            reference_error = (np.abs(ze) + np.abs(de) + node.delta) * (1 + 4 * work.u)
            # the scalar bound lies in [low, high]: decided here unless the error is in between
            if work is EXTENDED:  # the scalar bound is exact: within the chain's slack below
                high = bound
                low = np.where(exact_bound, bound, bound * (dt(1) - dt(4) * dt(work.slack)))
                low = np.where(ambiguous, bound / 4, low)
            else:  # the scalar bound is the same float chain, up to its node values
                high, low = bound * (1 + BAND), bound * (1 - BAND)
            # (differences first: err and the bound are close, so err - bound is exact)
            beyond = (err - high) - reference_error > 0
            near = ~beyond & ((err - low) + reference_error > 0)
            r = np.where(bound > 0, err / np.where(bound > 0, bound, 1),
                         np.where(err == 0, 0.0, np.inf))
        checked = ~ood & finite & in_format
        bad = ~ood & (~finite | ~in_format | beyond)
        r = np.where(ood, np.nan, np.where(finite, r, np.inf)).astype(np.float64)
        resolved_q = 0
        for i in np.flatnonzero(checked & near):
            case = tuple(float(np.asarray(cases[k])[i]) for k in INPUTS)
            bad[i], r[i] = _scalar_decision(fmt, case, q, float(c64[i]), model, cache)
            resolved_q += 1
        resolved += resolved_q
        resolved_by[q] = resolved_q
        violation[q] = bad
        ratio[q] = r
        ood_out[q] = ood
        nonfinite[q] = ~ood & ~finite
        notfmt[q] = ~ood & finite & ~in_format
    return Verdict(ratio, violation, ood_out, nonfinite, notfmt, resolved, resolved_by)
