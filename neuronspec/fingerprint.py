"""Which evaluation an implementation performs, read off its results.

Per case (``Fingerprint``): for each dimension of the evaluation -- fused or two-rounding
forward and update, the square, subnormals, wider work -- the cases whose two candidate
variants differ tell which one the implementation matches bit for bit.  The learning-rate probe
(``learning_rate_probe``) tells whether a binary64 lr is used as given, rounded to the format, or
rounded to a narrower format (not admitted).

Per batch (``batch_fingerprint``, narrow formats): for y and the updates the candidate
evaluations are computed exactly (``reference.batch`` pairs, then rounded): two roundings in the
format, one fused rounding, float32 work rounded to the format after each operation, and a fused
float32 operation rounded to the format.  Over the cases where the candidates differ, the share
of outputs equal (bit for bit) to each candidate names what the implementation does -- e.g. a
CUDA kernel contracting ``w*x + b`` into an FMA, or keeping float16 work in float32.  The update
candidates use the implementation's own dL_dw and dL_db, so only the update's own roundings are
compared.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from reference.batch import BINARY64, round_array, two_sum, work_for
from reference.bounds import OutOfDomain
from reference.model import WIDER
from reference.formats import FLOAT32, FORMATS, Format, get_format
from reference.rounded import ALL_VARIANTS, evaluate_variants
from reference.step import REQUIRED

from .errors import ImplementationError

__all__ = ["Fingerprint", "learning_rate_probe", "batch_fingerprint", "CANDIDATES"]

# dimension -> (quantities compared, variant A, words A, variant B, words B)
_DIMENSIONS = {
    "forward": (("y",), "canonical", "two roundings fl(fl(w*x)+b)",
                "fused-forward", "fused multiply-add fl(w*x+b)"),
    "update": (("w_new", "b_new"), "canonical", "two roundings fl(w-fl(lr*g))",
               "fused-update", "fused update fl(w-lr*g)"),
    "loss": (("loss",), "canonical", "r*r correctly rounded",
             "pow-one-ulp", "square off by one ulp (pow)"),
    "subnormals": (("y", "loss", "dL_dw", "dL_db"), "canonical", "preserved (gradual underflow)",
                   "ftz", "flushed to zero"),
    "wide work": (REQUIRED, "canonical",
                  "each operation rounded to the format", "wide-kept",
                  "kept in {wide}, rounded when stored"),
}


class Fingerprint:
    """Per dimension of the evaluation (fused forward, fused update, square, subnormals, float32
    work), the cases that tell its two variants apart and which one the implementation matched."""

    def __init__(self, fmt: Format) -> None:
        self.fmt = fmt
        wide = WIDER[fmt.name].name
        self.dims = {k: v[:4] + (v[4].format(wide=wide),) for k, v in _DIMENSIONS.items()}
        names = {v for d in self.dims.values() for v in (d[1], d[3])}
        self.variants = [ALL_VARIANTS[n] for n in sorted(names)]
        self.counts = {k: [0, 0, 0] for k in self.dims}  # distinguishing, matched A, matched B

    def add(self, case: tuple, outputs: dict, bounds: dict) -> None:
        try:
            res = evaluate_variants(self.fmt, *case, self.variants)
        except ValueError:
            return
        for dim, (qs, a, _, b, _) in self.dims.items():
            if any(isinstance(bounds[q], OutOfDomain) for q in qs):
                continue
            ka = tuple(_bits(res[a][q]) for q in qs)
            kb = tuple(_bits(res[b][q]) for q in qs)
            if ka == kb:
                continue
            mine = tuple(_bits(outputs[q]) for q in qs)
            c = self.counts[dim]
            c[0] += 1
            c[1] += mine == ka
            c[2] += mine == kb

    def summary(self) -> dict:
        out = {}
        for dim, (qs, a, wa, b, wb) in self.dims.items():
            n, ma, mb = self.counts[dim]
            if n == 0:
                words = "not distinguished by these cases"
            elif ma == n:
                words = f"{wa} ({n}/{n} cases)"
            elif mb == n:
                words = f"{wb} ({n}/{n} cases)"
            else:
                words = f"{wa} in {ma}/{n} cases, {wb} in {mb}/{n}"
            out[dim] = {"cases": n, "matchedA": ma, "matchedB": mb, "A": a, "B": b,
                        "words": words}
        return out


def _bits(v: float):
    return "nan" if v != v else (v, math.copysign(1.0, v))


def _lr_probe_cases(fmt: Format):
    """(case, lr variants) where the update tells the candidate learning rates apart."""
    for w, b, x, t in ((0.75, -0.5, 1.5, 0.25), (1.25, 0.375, -0.875, 2.0), (0.3, 0.1, 3.0, -1.0)):
        params = tuple(fmt.round(v) for v in (w, b, x, t))
        for lr in (0.1, 0.3, 1 / 3, 0.7, 0.0123):
            yield params, lr


def _update_of(fmt: Format, params: tuple, lr: float) -> set:
    res = evaluate_variants(fmt, *params, lr, [ALL_VARIANTS["canonical"], ALL_VARIANTS["fused-update"]])
    return {(r["w_new"], r["b_new"]) for r in res.values()}


def learning_rate_probe(impl: Any, fmt: Format) -> "tuple[str, str] | None":
    """Which learning rate does the implementation use: as given (binary64), rounded to the
    format, or rounded to a narrower format than its parameters (not admitted)?  Returns
    (words, a finding outside every model or ""); None when the implementation did not answer."""
    narrower = [f for f in FORMATS.values() if f.p < fmt.p]
    for params, lr64 in _lr_probe_cases(fmt):
        lr_f = fmt.round(lr64)
        candidates = {("rounded to the format" if fmt.p < 53 else "as given"):
                      _update_of(fmt, params, lr_f)}
        for nf in narrower:
            candidates[f"rounded to {nf.name} (narrower)"] = _update_of(fmt, params, nf.round(lr_f))
        if fmt.p < 53:
            candidates["as given (binary64)"] = _update_of(fmt, params, lr64)
        tried_lr = lr64 if fmt.p < 53 else lr_f
        sets = list(candidates.values())
        if any(a & b for i, a in enumerate(sets) for b in sets[i + 1:]):
            continue  # this probe cannot tell the candidates apart
        try:
            out = impl(fmt.name, params + (tried_lr,))
        except (NotImplementedError, ImplementationError):
            return None
        used = [k for k, v in candidates.items() if (out["w_new"], out["b_new"]) in v]
        words = ("a binary64 lr is " + used[0]) if used else "lr used in none of the recognised ways"
        finding = ""
        if used and used[0].endswith("(narrower)"):
            finding = (f"rounds the learning rate to {used[0][11:-11]}, narrower than its "
                       f"{fmt.name} parameters: no model admits it; use lr in {fmt.name}")
        return words, finding
    return "not distinguished by the probes", ""


CANDIDATES = ("two roundings", "fused", "float32 per op", "fused in float32")


def _pair_round(fmt: Format, hi, lo):
    return round_array(fmt, hi, lo, BINARY64)


def _r(fmt: Format, v):
    return round_array(fmt, v, None, BINARY64)


def _candidates(fmt: Format, base, addend_exact_hi, addend_exact_lo, product):
    """base + product, evaluated four ways; product = (hi, lo) exact pair in binary64."""
    ph, pl = product
    out = {}
    # two roundings: the product rounded to the format, then the sum
    p1 = _pair_round(fmt, ph, pl)
    s, e = two_sum(base, p1)
    out["two roundings"] = _pair_round(fmt, s, e)
    s, e = two_sum(base, ph)
    s, e = s, e + pl
    out["fused"] = _pair_round(fmt, *two_sum(s, e))
    p32 = _pair_round(FLOAT32, ph, pl)
    s, e = two_sum(base, p32)
    out["float32 per op"] = _r(fmt, _pair_round(FLOAT32, s, e))
    s, e = two_sum(base, ph)
    s, e = two_sum(s, e + pl)
    out["fused in float32"] = _r(fmt, _pair_round(FLOAT32, s, e))
    return out


def batch_fingerprint(fmt: "Format | str", cols: dict, outputs: dict) -> dict:
    """{quantity: {"informative": n, candidate: share of informative cases equal to it}}."""
    fmt = get_format(fmt)
    if work_for(fmt) is not BINARY64:
        raise ValueError("the batch fingerprint covers float16, bfloat16 and float32")
    w, b, x, lr = (np.asarray(cols[k], dtype=np.float64) for k in ("w", "b", "x", "lr"))
    zero = np.zeros_like(w)
    result = {}
    with np.errstate(all="ignore"):
        # y = w*x + b (the product of two format values is exact in binary64)
        cands = {"y": _candidates(fmt, b, None, None, (w * x, zero))}
        # w' = w - lr*g and b' = b - lr*gb with the implementation's own gradients
        for q, base, grad in (("w_new", w, "dL_dw"), ("b_new", b, "dL_db")):
            g = np.asarray(outputs[grad], dtype=np.float64)
            cands[q] = _candidates(fmt, base, None, None, (-(lr * g), zero))
    for q, cand in cands.items():
        got = np.asarray(outputs[q], dtype=np.float64)
        values = np.stack([cand[c] for c in CANDIDATES])
        finite = np.isfinite(values).all(axis=0) & np.isfinite(got)
        differ = finite & ~(values == values[0]).all(axis=0)
        n = int(differ.sum())
        entry = {"informative": n}
        for k, c in enumerate(CANDIDATES):
            entry[c] = float((values[k][differ] == got[differ]).mean()) if n else None
        result[q] = entry
    return result
