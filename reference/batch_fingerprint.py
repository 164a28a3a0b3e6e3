"""Which evaluation an implementation performs, read off its batch outputs (narrow formats).

For y and the updates, the candidate evaluations are computed exactly (``batch`` pairs, then
rounded): two roundings in the format, one fused rounding, float32 work rounded to the format
after each operation, and a fused float32 operation rounded to the format.  Over the cases
where the candidates differ, the share of outputs equal (bit for bit) to each candidate names
what the implementation does -- e.g. a CUDA kernel contracting ``w*x + b`` into an FMA, or
keeping float16 work in float32.  The update candidates use the implementation's own dL_dw and
dL_db, so only the update's own roundings are compared.
"""

from __future__ import annotations

import numpy as np

from . import batch
from .formats import FLOAT32, Format, get_format

__all__ = ["fingerprint", "CANDIDATES"]

CANDIDATES = ("two roundings", "fused", "float32 per op", "fused in float32")


def _pair_round(fmt: Format, hi, lo):
    return batch.round_to_format(fmt, hi, lo, batch.BINARY64)


def _r(fmt: Format, v):
    return batch.round_to_format(fmt, v, None, batch.BINARY64)


def _candidates(fmt: Format, base, addend_exact_hi, addend_exact_lo, product):
    """base + product, evaluated four ways; product = (hi, lo) exact pair in binary64."""
    ph, pl = product
    out = {}
    # two roundings: the product rounded to the format, then the sum
    p1 = _pair_round(fmt, ph, pl)
    s, e = batch._two_sum(base, p1)
    out["two roundings"] = _pair_round(fmt, s, e)
    s, e = batch._two_sum(base, ph)
    s, e = s, e + pl
    out["fused"] = _pair_round(fmt, *batch._two_sum(s, e))
    p32 = _pair_round(FLOAT32, ph, pl)
    s, e = batch._two_sum(base, p32)
    out["float32 per op"] = _r(fmt, _pair_round(FLOAT32, s, e))
    s, e = batch._two_sum(base, ph)
    s, e = batch._two_sum(s, e + pl)
    out["fused in float32"] = _r(fmt, _pair_round(FLOAT32, s, e))
    return out


def fingerprint(fmt: "Format | str", cols: dict, outputs: dict) -> dict:
    """{quantity: {"informative": n, candidate: share of informative cases equal to it}}."""
    fmt = get_format(fmt)
    if batch.work_for(fmt) is not batch.BINARY64:
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
