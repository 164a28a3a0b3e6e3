"""Random cases (w, b, x, t, lr) of a format, by regime, for sweeps and soundness runs.

Each regime targets a way floating-point evaluation of the step goes wrong: cancellation in
y - t, cancellation in w*x + b, underflow, overflow, and extreme learning rates.  Cases are
drawn with numpy from a seed, so a run is reproducible case by case.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .formats import Format
from .sampling import random_values

__all__ = ["REGIMES", "Case", "regime_cases"]

Case = tuple[float, float, float, float, float]


def _mid(fmt: Format) -> tuple[int, int]:
    """An exponent window whose products and sums cannot overflow or underflow."""
    span = min(fmt.emax, -fmt.emin) // 4
    return -span, span


def _cast(fmt: Format, values: np.ndarray) -> np.ndarray:
    return np.array([fmt.round(float(v)) for v in values])


def _nudge(fmt: Format, rng: np.random.Generator, values: np.ndarray, ulps: int = 4) -> np.ndarray:
    """Each value moved by a random number of ulps in [-ulps, ulps] (staying finite)."""
    out = values.copy()
    for i, v in enumerate(values.tolist()):
        for _ in range(int(rng.integers(0, ulps + 1))):
            v = fmt.next_up(v) if rng.random() < 0.5 else fmt.next_down(v)
            if not np.isfinite(v):
                break
        if np.isfinite(v):
            out[i] = v
    return out


def _generic(fmt, rng, n):
    """Log-uniform over the whole exponent range (subnormals included), lr >= 0."""
    w, b, x, t = (random_values(fmt, rng, n) for _ in range(4))
    lr = np.abs(random_values(fmt, rng, n))
    return w, b, x, t, lr


def _moderate(fmt, rng, n):
    lo, hi = _mid(fmt)
    w, b, x = (random_values(fmt, rng, n, emin=lo, emax=hi, special=0.0) for _ in range(3))
    lr = np.abs(random_values(fmt, rng, n, emin=-12, emax=2, special=0.01))
    return w, b, x, lr


def _cancel_y_t(fmt, rng, n):
    """t within a few ulps of fl(w*x + b): r is tiny and dominated by rounding errors."""
    w, b, x, lr = _moderate(fmt, rng, n)
    y = _cast(fmt, _cast(fmt, w * x) + b)  # fl(fl(w*x) + b), exact in binary64 before rounding
    return w, b, x, _nudge(fmt, rng, y), lr


def _cancel_wx_b(fmt, rng, n):
    """b close to -w*x: y is tiny relative to its parts."""
    w, _, x, lr = _moderate(fmt, rng, n)
    b = _nudge(fmt, rng, -_cast(fmt, w * x))
    lo, hi = _mid(fmt)
    t = random_values(fmt, rng, n, emin=lo, emax=hi)
    return w, b, x, t, lr


def _tiny(fmt, rng, n):
    """Products and sums near and in the subnormal range."""
    half = fmt.emin // 2
    w, x = (random_values(fmt, rng, n, emin=half - 3, emax=half + 3) for _ in range(2))
    b, t = (random_values(fmt, rng, n, emin=fmt.emin - fmt.p, emax=fmt.emin + 3) for _ in range(2))
    lr = np.abs(random_values(fmt, rng, n, emin=-3, emax=3))
    return w, b, x, t, lr


def _huge(fmt, rng, n):
    """Magnitudes near the overflow threshold; in half the cases t is close to y, so that r
    (and the loss) stay representable while w*x, b and y are huge."""
    half = fmt.emax // 2
    w, x = (random_values(fmt, rng, n, emin=half - 3, emax=half + 1) for _ in range(2))
    b, t = (random_values(fmt, rng, n, emin=fmt.emax - 4, emax=fmt.emax - 1) for _ in range(2))
    lr = np.abs(random_values(fmt, rng, n, emin=-2 * fmt.p, emax=-4))
    near = rng.random(n) < 0.5
    y = _cast(fmt, _cast(fmt, w * x) + b)
    t[near] = _nudge(fmt, rng, y[near], ulps=2 * fmt.p)
    return w, b, x, t, lr


def _lr_range(fmt, rng, n):
    """lr from 0 through tiny to large enough that the step overshoots (lr*(x^2+1) >= 2)."""
    lo, hi = _mid(fmt)
    w, b, x, t = (random_values(fmt, rng, n, emin=lo // 2, emax=hi // 2) for _ in range(4))
    kind = rng.integers(0, 4, n)
    lr = np.abs(random_values(fmt, rng, n, emin=fmt.emin - fmt.p, emax=fmt.emax // 2))
    lr[kind == 0] = 0.0
    overshoot = np.array([fmt.round(float(v)) for v in (rng.uniform(0.5, 3.0, n) / (x * x + 1))])
    lr[kind == 1] = overshoot[kind == 1]
    lr[kind == 2] = np.abs(random_values(fmt, rng, int((kind == 2).sum()),
                                         emin=fmt.emin - fmt.p, emax=fmt.emin + fmt.p))
    return w, b, x, t, lr


REGIMES: dict[str, Callable] = {
    "generic": _generic,
    "cancel-y-t": _cancel_y_t,
    "cancel-wx-b": _cancel_wx_b,
    "tiny": _tiny,
    "huge": _huge,
    "lr-range": _lr_range,
}


def regime_cases(fmt: Format, regime: str, rng: np.random.Generator, n: int) -> list[Case]:
    """``n`` cases of ``regime`` in ``fmt``: tuples of Python floats holding format values."""
    try:
        make = REGIMES[regime]
    except KeyError:
        raise ValueError(f"unknown regime {regime!r}; choose one of {', '.join(REGIMES)}") from None
    out: list[Case] = []
    while len(out) < n:  # a regime may draw a few non-finite values (overflow): draw again
        with np.errstate(all="ignore"):
            cols = make(fmt, rng, n - len(out))
        for case in zip(*(c.tolist() for c in cols)):
            if all(np.isfinite(case)):
                out.append(tuple(float(v) for v in case))
    return out


# ---- vectorised regimes, for sweeps (batch path) --------------------------------------------

#: A sweep draws one learning rate per block of this many consecutive cases of a regime:
#: optimisers apply one lr per parameter tensor (torch_sgd's batch steps one tensor per run of
#: equal lr), and the property suite still draws lr per case.
LR_BLOCK = 1024


def _round_array(fmt: Format, values: np.ndarray) -> np.ndarray:
    """Values rounded to ``fmt`` (float64 arithmetic has already rounded for float64)."""
    if fmt.p == 53:
        return values
    if fmt.name in ("float32", "float16"):  # numpy's casts round to nearest even, from binary64
        return values.astype(np.float32 if fmt.name == "float32" else np.float16).astype(np.float64)
    from .batch import BINARY64, round_to_format

    return round_to_format(fmt, values, None, BINARY64)


def _nudge_array(fmt: Format, rng: np.random.Generator, values: np.ndarray, ulps: int = 4):
    """Each value moved by a random whole number of its quanta in [-ulps, ulps] (finite)."""
    from .batch import BINARY64, _pow2floor

    with np.errstate(all="ignore"):
        quantum = np.maximum(_pow2floor(np.abs(values), BINARY64), fmt.smallest_normal) * 2.0 ** (1 - fmt.p)
        moved = _round_array(fmt, values + rng.integers(-ulps, ulps + 1, len(values)) * quantum)
    return np.where(np.isfinite(moved), moved, values)


def _blocks(n: int, block: int, draw: Callable[[int], np.ndarray]) -> np.ndarray:
    return np.repeat(draw(-(-n // block)), block)[:n]


def regime_arrays(fmt: Format, regime: str, rng: np.random.Generator, n: int,
                  lr_block: int = LR_BLOCK) -> tuple[np.ndarray, ...]:
    """``n`` cases of ``regime`` as five float64 arrays (w, b, x, t, lr) of finite format
    values; lr is drawn once per ``lr_block`` cases.  Same regimes as :func:`regime_cases`
    (a different stream: :func:`sampling.fast_values`)."""
    from .sampling import fast_values as fv

    lo, hi = _mid(fmt)
    with np.errstate(all="ignore"):
        if regime == "generic":
            w, b, x, t = (fv(fmt, rng, n) for _ in range(4))
            lr = _blocks(n, lr_block, lambda k: np.abs(fv(fmt, rng, k)))
        elif regime in ("cancel-y-t", "cancel-wx-b"):
            w, b, x = (fv(fmt, rng, n, emin=lo, emax=hi, special=0.0) for _ in range(3))
            lr = _blocks(n, lr_block, lambda k: np.abs(fv(fmt, rng, k, emin=-12, emax=2,
                                                            special=0.01)))
            if regime == "cancel-y-t":
                t = _nudge_array(fmt, rng, _round_array(fmt, _round_array(fmt, w * x) + b))
            else:
                b = _nudge_array(fmt, rng, -_round_array(fmt, w * x))
                t = fv(fmt, rng, n, emin=lo, emax=hi)
        elif regime == "tiny":
            half = fmt.emin // 2
            w, x = (fv(fmt, rng, n, emin=half - 3, emax=half + 3) for _ in range(2))
            b, t = (fv(fmt, rng, n, emin=fmt.emin - fmt.p, emax=fmt.emin + 3) for _ in range(2))
            lr = _blocks(n, lr_block, lambda k: np.abs(fv(fmt, rng, k, emin=-3, emax=3)))
        elif regime == "huge":
            half = fmt.emax // 2
            w, x = (fv(fmt, rng, n, emin=half - 3, emax=half + 1) for _ in range(2))
            b, t = (fv(fmt, rng, n, emin=fmt.emax - 4, emax=fmt.emax - 1) for _ in range(2))
            lr = _blocks(n, lr_block, lambda k: np.abs(fv(fmt, rng, k, emin=-2 * fmt.p, emax=-4)))
            near = rng.random(n) < 0.5
            y = _round_array(fmt, _round_array(fmt, w * x) + b)
            t = np.where(near, _nudge_array(fmt, rng, y, ulps=2 * fmt.p), t)
        elif regime == "lr-range":
            w, b, x, t = (fv(fmt, rng, n, emin=lo // 2, emax=hi // 2) for _ in range(4))

            def draw(k):
                kind = rng.integers(0, 4, k)
                lr = np.abs(fv(fmt, rng, k, emin=fmt.emin - fmt.p, emax=fmt.emax // 2))
                lr[kind == 0] = 0.0
                lr[kind == 1] = _round_array(fmt, rng.uniform(0.5, 3.0, k))[kind == 1]
                tiny = np.abs(fv(fmt, rng, k, emin=fmt.emin - fmt.p, emax=fmt.emin + fmt.p))
                lr[kind == 2] = tiny[kind == 2]
                return lr

            lr = _blocks(n, lr_block, draw)
        else:
            raise ValueError(f"unknown regime {regime!r}; choose one of {', '.join(REGIMES)}")
    t = np.where(np.isfinite(t), t, b)  # y overflowed: any finite target will do
    return w, b, x, t, lr
