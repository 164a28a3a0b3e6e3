"""Other tools' default tolerances and a few realistic wrong results, to compare verdicts.

The peers' tolerances are applied as ``|computed - expected| <= atol + rtol*|expected|`` with
``expected`` the exact value (the best reference such a tool could be given), in float64.
"""

from __future__ import annotations

import math
from typing import Callable

from reference.formats import FLOAT32, Format
from reference.rounded import fl_mul, fl_sub

__all__ = ["PEER_TOLERANCES", "MUTANTS", "peer_accepts", "DEFAULT_PEER"]

#: The tool whose default tolerance the plots (spec/plots, the HTML report) compare with.
DEFAULT_PEER = "torch.testing.assert_close"

#: tool -> format -> (rtol, atol); from the tools' sources (see shared facts).
PEER_TOLERANCES: dict[str, dict[str, tuple[float, float]]] = {
    "torch.testing.assert_close": {"float16": (1e-3, 1e-5), "bfloat16": (1.6e-2, 1e-5),
                                   "float32": (1.3e-6, 1e-5), "float64": (1e-7, 1e-7)},
    "numpy.testing.assert_allclose": {f: (1e-7, 0.0) for f in ("float16", "bfloat16", "float32", "float64")},
    "jax check_grads": {"float16": (1e-2, 1e-2), "bfloat16": (1e-1, 1e-1),
                        "float32": (2e-3, 2e-3), "float64": (1e-5, 1e-5)},
}


def peer_accepts(tool: str, fmt: Format, computed: float, expected: float) -> bool:
    rtol, atol = PEER_TOLERANCES[tool][fmt.name]
    if not math.isfinite(computed):
        return False
    return abs(computed - expected) <= atol + rtol * abs(expected)


def _sign_flipped(fmt, case, canonical):
    w, b, x, t, lr = case
    out = dict(canonical)
    r = -canonical["dL_db"]
    gw = -canonical["dL_dw"]
    out.update(dL_dy=r, dL_db=r, dL_dw=gw,
               w_new=fl_sub(fmt, w, fl_mul(fmt, lr, gw)), b_new=fl_sub(fmt, b, fl_mul(fmt, lr, r)))
    return out


def _no_half(fmt, case, canonical):
    w, b, x, t, lr = case
    r2 = fl_mul(fmt, 2.0, canonical["dL_db"])
    gw = fl_mul(fmt, r2, x)
    r = canonical["dL_db"]
    return dict(canonical, loss=fl_mul(fmt, r, r), dL_dy=r2, dL_db=r2, dL_dw=gw,
                w_new=fl_sub(fmt, w, fl_mul(fmt, lr, gw)), b_new=fl_sub(fmt, b, fl_mul(fmt, lr, r2)))


def _lr_float32(fmt, case, canonical):
    if fmt.name != "float64":
        return None
    w, b, x, t, lr = case
    lr32 = FLOAT32.round(lr)
    gw, r = canonical["dL_dw"], canonical["dL_db"]
    return dict(canonical, w_new=fl_sub(fmt, w, fl_mul(fmt, lr32, gw)),
                b_new=fl_sub(fmt, b, fl_mul(fmt, lr32, r)))


def _gw_one_ulp(fmt, case, canonical):
    w, b, x, t, lr = case
    g = canonical["dL_dw"]
    if not math.isfinite(g):
        return None
    gw = fmt.next_up(g)
    return dict(canonical, dL_dw=gw, w_new=fl_sub(fmt, w, fl_mul(fmt, lr, gw)))


#: name -> function(fmt, case, canonical results) -> wrong results (or None: not applicable)
MUTANTS: dict[str, Callable] = {
    "gradient sign flipped": _sign_flipped,
    "factor 1/2 missing": _no_half,
    "lr rounded to float32 (float64 only)": _lr_float32,
    "dL/dw one ulp off": _gw_one_ulp,
}
