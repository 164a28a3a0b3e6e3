"""The regimes: where floating-point evaluation of the step goes wrong, each defined once.

A regime targets one way the step goes wrong -- cancellation in y - t, cancellation in
w*x + b, underflow, overflow, extreme learning rates -- and is written once, as a function of a
*sampler* that draws values, rounds them to the format and moves them by a few ulps.  Three
samplers run the same definitions:

- :class:`CaseSampler` (numpy, seeded; one lr per case): :func:`regime_cases`, for soundness
  runs, cross-checks and the test vectors;
- :class:`BlockSampler` (numpy, seeded, several times faster; one lr per block of cases, as
  optimisers apply one lr per tensor): :func:`regime_arrays`, for sweeps;
- ``strategies.HypothesisSampler``: the hypothesis strategies of the property suite.

A run is reproducible case by case from its seed.  :data:`CAMPAIGN_REGIMES` are the regimes of
seeded campaigns (sweeps, soundness, cross-check, vectors) in their recorded order; the property
suite draws from every regime in :data:`REGIMES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from reference.batch import ArrayOps, round_array
from reference.formats import Format
from reference.step import Case

from .sampling import fast_parameters, fast_values, random_values

__all__ = ["Regime", "REGIMES", "CAMPAIGN_REGIMES", "CaseSampler", "BlockSampler",
           "regime_cases", "regime_arrays", "LR_BLOCK", "mid_window", "NumpyDraws",
           "CompiledDraws", "draws_for"]

#: A sweep draws one learning rate per block of this many consecutive cases of a regime:
#: optimisers apply one lr per parameter tensor (torch_sgd's batch steps one tensor per run of
#: equal lr); the property suite and the soundness run draw lr per case.
LR_BLOCK = 1024


def mid_window(fmt: Format) -> tuple[int, int]:
    """An exponent window whose products and sums cannot overflow or underflow."""
    span = min(fmt.emax, -fmt.emin) // 4
    return -span, span


@dataclass(frozen=True)
class Regime:
    """A named way of drawing cases; ``draw(sampler)`` returns the columns (w, b, x, t, lr)."""

    name: str
    doc: str
    draw: Callable[[Any], tuple]


# ---- the regimes ------------------------------------------------------------------------------

def _generic(s):
    w, b, x, t = (s.values() for _ in range(4))
    lr = s.rate(lambda k, scale: abs(s.values(size=k)))
    return w, b, x, t, lr


def _moderate_parts(s):
    lo, hi = mid_window(s.fmt)
    w, b, x = (s.values(lo, hi, special=0.0) for _ in range(3))
    lr = s.rate(lambda k, scale: abs(s.values(-12, 2, special=0.01, size=k)))
    return w, b, x, lr


def _cancel_y_t(s):
    w, b, x, lr = _moderate_parts(s)
    return w, b, x, s.nudge(s.round(s.round(w * x) + b)), lr


def _cancel_wx_b(s):
    w, _, x, lr = _moderate_parts(s)
    lo, hi = mid_window(s.fmt)
    b = s.nudge(-s.round(w * x))
    return w, b, x, s.values(lo, hi), lr


def _tiny(s):
    fmt = s.fmt
    half = fmt.emin // 2
    w, x = (s.values(half - 3, half + 3) for _ in range(2))
    b, t = (s.values(fmt.emin - fmt.p, fmt.emin + 3) for _ in range(2))
    lr = s.rate(lambda k, scale: abs(s.values(-3, 3, size=k)))
    return w, b, x, t, lr


def _huge(s):
    fmt = s.fmt
    half = fmt.emax // 2
    w, x = (s.values(half - 3, half + 1) for _ in range(2))
    b, t = (s.values(fmt.emax - 4, fmt.emax - 1) for _ in range(2))
    lr = s.rate(lambda k, scale: abs(s.values(-2 * fmt.p, -4, size=k)))
    near = s.coin(0.5)
    y = s.round(s.round(w * x) + b)
    return w, b, x, s.nudge_where(near, y, t, ulps=2 * fmt.p), lr


def _lr_range(s):
    fmt = s.fmt
    lo, hi = mid_window(fmt)
    w, b, x, t = (s.values(lo // 2, hi // 2) for _ in range(4))

    def draw(k, scale):
        kind = s.integers(0, 4, k)
        lr = abs(s.values(fmt.emin - fmt.p, fmt.emax // 2, size=k))
        lr = s.put(lr, kind == 0, 0.0)
        lr = s.put(lr, kind == 1, s.round(s.uniform(0.5, 3.0, k) / scale))
        tiny = abs(s.values_where(kind == 2, fmt.emin - fmt.p, fmt.emin + fmt.p))
        return s.put(lr, kind == 2, tiny)

    return w, b, x, t, s.rate(draw, scale=x * x + 1)


def _moderate(s):
    lo, hi = mid_window(s.fmt)
    w, b, x, t = (s.values(lo, hi) for _ in range(4))
    return w, b, x, t, s.rate(lambda k, scale: _typical_rate(s, k))


def _typical_rate(s, k):
    """Zero, moderate, tiny (subnormal) or large learning rates, in equal shares."""
    fmt = s.fmt
    kind = s.integers(0, 4, k)
    lr = s.put(abs(s.values(-12, 1, size=k, special=0.0)), kind == 0, 0.0)
    lr = s.put(lr, kind == 2, abs(s.values_where(kind == 2, None, fmt.emin + 2)))
    return s.put(lr, kind == 3, abs(s.values_where(kind == 3, -2, min(fmt.emax // 2, 12))))


def _overshoot(s):
    lo, hi = mid_window(s.fmt)
    lo, hi = max(lo, -4), min(hi, 4)
    w, b, x, t = (s.values(lo, hi) for _ in range(4))

    def draw(k, scale):
        lr = abs(s.round(s.choice([0.5, 1.0, 1.5, 2.0, 2.5], k) / scale))
        return s.nudge(lr, ulps=2)

    return w, b, x, t, s.rate(draw, scale=x * x + 1)


def _lr_extremes(s):
    fmt = s.fmt
    lo, hi = mid_window(fmt)
    w, b, x, t = (s.values(lo, hi) for _ in range(4))
    rates = [0.0, fmt.smallest_subnormal, fmt.smallest_normal]
    return w, b, x, t, s.rate(lambda k, scale: s.choice(rates, k))


def _negative_lr(s):
    """Moderate parameters, a negative learning rate: moderate, tiny (subnormal), the smallest
    normal, large, or -0."""
    fmt = s.fmt
    lo, hi = mid_window(fmt)
    w, b, x, t = (s.values(lo, hi) for _ in range(4))

    def draw(k, scale):
        kind = s.integers(0, 5, k)
        lr = abs(s.values(-12, 1, size=k, special=0.0))
        lr = s.put(lr, kind == 1, abs(s.values_where(kind == 1, None, fmt.emin - 1)))
        lr = s.put(lr, kind == 2, fmt.smallest_normal)
        lr = s.put(lr, kind == 3, abs(s.values_where(kind == 3, 1, min(fmt.emax // 2, 12))))
        return -s.put(lr, kind == 4, 0.0)

    return w, b, x, t, s.rate(draw)


def _subnormal_gradient(s):
    """r subnormal (y and t in and near the subnormal range) with x moderate, so that dL_dw and
    dL_db are subnormal and so are the updates' products; lr moderate or subnormal."""
    fmt = s.fmt
    w = s.values(fmt.emin - 3, fmt.emin + 2)
    x = s.values(-2, 2)
    b, t = (s.values(fmt.emin - fmt.p, fmt.emin) for _ in range(2))

    def draw(k, scale):
        tiny = s.integers(0, 4, k) == 0
        lr = abs(s.values(-8, 1, size=k, special=0.0))
        return s.put(lr, tiny, abs(s.values_where(tiny, None, fmt.emin - 1)))

    return w, b, x, t, s.rate(draw)


def _same_params(s):
    """(w, b) repeated over runs of consecutive cases with new x and t: a cache keyed by the
    parameters, or state kept between calls, shows."""
    lo, hi = mid_window(s.fmt)
    w, b = (s.repeat(lambda k: s.values(lo, hi, size=k)) for _ in range(2))
    x, t = (s.values(lo, hi) for _ in range(2))
    return w, b, x, t, s.rate(lambda k, scale: abs(s.values(-12, 1, size=k, special=0.0)))


REGIMES: dict[str, Regime] = {r.name: r for r in (
    Regime("generic", "Log-uniform over the whole exponent range (subnormals included), lr >= 0.",
           _generic),
    Regime("cancel-y-t", "t within a few ulps of fl(w*x + b): r is tiny and dominated by "
           "rounding errors.", _cancel_y_t),
    Regime("cancel-wx-b", "b close to -w*x: y is tiny relative to its parts.", _cancel_wx_b),
    Regime("tiny", "Products and sums near and in the subnormal range.", _tiny),
    Regime("huge", "Magnitudes near the overflow threshold; in half the cases t is close to y, "
           "so that r (and the loss) stay representable while w*x, b and y are huge.", _huge),
    Regime("lr-range", "lr from 0 through tiny to large enough that the step overshoots "
           "(lr*(x^2+1) >= 2).", _lr_range),
    Regime("moderate", "Every input in a window where nothing overflows or underflows; lr zero, "
           "moderate, tiny or large.", _moderate),
    Regime("overshoot", "lr*(x^2 + 1) around 1 and 2: the step lands on, or jumps past, the "
           "minimum.", _overshoot),
    Regime("lr-extremes", "lr = 0 (nothing may move), the smallest subnormal or the smallest "
           "normal (updates round back to w, b).", _lr_extremes),
    Regime("negative-lr", "A negative learning rate (moderate, subnormal, large, -0): the step "
           "climbs; an implementation may decline it (a reported skip).", _negative_lr),
    Regime("subnormal-gradient", "r, dL_dw and dL_db subnormal, x moderate; lr moderate or "
           "subnormal.", _subnormal_gradient),
    Regime("same-params", "(w, b) repeated over runs of cases with new x and t: state kept "
           "between calls, or keyed by the parameters, shows.", _same_params),
)}

#: The regimes of seeded campaigns, in their recorded order (a chunk holds them in equal shares).
CAMPAIGN_REGIMES: tuple[str, ...] = ("generic", "cancel-y-t", "cancel-wx-b", "tiny", "huge",
                                     "lr-range", "negative-lr", "subnormal-gradient",
                                     "same-params")
#: How many consecutive cases of ``same-params`` share their (w, b).
SAME_PARAMS_RUN = 8


def _regime(name: str) -> Regime:
    try:
        return REGIMES[name]
    except KeyError:
        raise ValueError(f"unknown regime {name!r}; choose one of {', '.join(REGIMES)}") from None


# ---- numpy samplers -------------------------------------------------------------------------

class _NumpySampler:
    """What both numpy samplers share: arrays of ``n`` values from a seeded generator."""

    def __init__(self, fmt: Format, rng: np.random.Generator, n: int) -> None:
        self.fmt, self.rng, self.n = fmt, rng, n

    def integers(self, lo: int, hi: int, k: int) -> np.ndarray:
        return self.rng.integers(lo, hi, k)

    def uniform(self, lo: float, hi: float, k: int) -> np.ndarray:
        return self.rng.uniform(lo, hi, k)

    def choice(self, options: list, k: int) -> np.ndarray:
        return self.rng.choice(np.array(options), size=k)

    def coin(self, p: float) -> np.ndarray:
        return self.rng.random(self.n) < p

    @staticmethod
    def put(values: np.ndarray, where, new) -> np.ndarray:
        return np.where(where, new, values)


def _repeat_runs(draw: Callable, n: int, run: int) -> np.ndarray:
    """``draw(k)`` values, each repeated over a run of ``run`` consecutive cases."""
    return np.repeat(draw(-(-n // run)), run)[:n]


class CaseSampler(_NumpySampler):
    """Per case: values from :func:`sampling.random_values`, rounding and nudging value by
    value (``Format.round``, ``next_up``/``next_down``), one lr per case."""

    def values(self, lo: "int | None" = None, hi: "int | None" = None, *, special: float = 0.02,
               size: "int | None" = None) -> np.ndarray:
        return random_values(self.fmt, self.rng, self.n if size is None else size, emin=lo,
                             emax=hi, special=special)

    def values_where(self, where: np.ndarray, lo, hi) -> np.ndarray:
        out = np.zeros(len(where))
        out[where] = random_values(self.fmt, self.rng, int(where.sum()), emin=lo, emax=hi)
        return out

    def rate(self, draw: Callable, scale: Any = 1.0) -> np.ndarray:
        return draw(self.n, scale)

    def repeat(self, draw: Callable) -> np.ndarray:
        return _repeat_runs(draw, self.n, SAME_PARAMS_RUN)

    def round(self, values: np.ndarray) -> np.ndarray:
        return np.array([self.fmt.round(float(v)) for v in values])

    def nudge(self, values: np.ndarray, ulps: int = 4) -> np.ndarray:
        """Each value moved by a random number of ulps in [-ulps, ulps] (staying finite)."""
        fmt, rng = self.fmt, self.rng
        out = values.copy()
        for i, v in enumerate(values.tolist()):
            for _ in range(int(rng.integers(0, ulps + 1))):
                v = fmt.next_up(v) if rng.random() < 0.5 else fmt.next_down(v)
                if not np.isfinite(v):
                    break
            if np.isfinite(v):
                out[i] = v
        return out

    def nudge_where(self, where: np.ndarray, values: np.ndarray, others: np.ndarray,
                    ulps: int) -> np.ndarray:
        out = others.copy()
        out[where] = self.nudge(values[where], ulps)
        return out


class NumpyDraws:
    """The draws of :class:`BlockSampler` from a numpy generator (``stream.Stream`` draws the
    same ones in compiled loops)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def close(self) -> None:
        pass

    def uniform(self, low: float, high: float, size: int) -> np.ndarray:
        return self.rng.uniform(low, high, size)

    def below(self, p: float, size: int) -> np.ndarray:
        return self.rng.random(size) < p

    def integers(self, low: int, high: int, size: int) -> np.ndarray:
        return self.rng.integers(low, high, size)

    def choice(self, options: np.ndarray, size: int) -> np.ndarray:
        return self.rng.choice(options, size=size)

    def values(self, fmt: Format, lo, hi, special: float, size: int) -> np.ndarray:
        return fast_values(fmt, self.rng, size, emin=lo, emax=hi, special=special)

    @staticmethod
    def round(fmt: Format, values: np.ndarray) -> np.ndarray:
        if fmt.p == 53:  # float64 arithmetic has rounded already
            return values
        if fmt.name in ("float32", "float16"):  # numpy's casts round to nearest even
            return values.astype(np.float32 if fmt.name == "float32" else np.float16) \
                .astype(np.float64)
        return np.asarray(round_array(fmt, values), dtype=np.float64)

    def nudge(self, fmt: Format, values: np.ndarray, ulps: int) -> np.ndarray:
        """Each value moved by a random whole number of its quanta in [-ulps, ulps] (finite)."""
        quantum = np.maximum(ArrayOps.pow2floor(np.abs(values)), fmt.smallest_normal) \
            * 2.0 ** (1 - fmt.p)
        moved = self.round(fmt, values + self.integers(-ulps, ulps + 1, len(values)) * quantum)
        return np.where(np.isfinite(moved), moved, values)


class CompiledDraws:
    """:class:`NumpyDraws` in compiled loops on the generator's own stream (``stream.Stream``:
    the same values, bit for bit); :meth:`close` hands the state back to the generator."""

    def __init__(self, rng: np.random.Generator) -> None:
        from .stream import Stream

        self.stream = Stream(rng)
        self.uniform, self.below = self.stream.uniform, self.stream.below
        self.integers, self.choice = self.stream.integers, self.stream.choice
        self.close = self.stream.close

    def values(self, fmt: Format, lo, hi, special: float, size: int) -> np.ndarray:
        frac_bits, low, high, threshold, specials = fast_parameters(fmt, lo, hi, special)
        return self.stream.values(frac_bits > 32, frac_bits, low, high - low + 1, fmt.emin,
                                  threshold, specials, size)

    def round(self, fmt: Format, values: np.ndarray) -> np.ndarray:
        if fmt.p == 53:
            return values
        return self.stream.round(values, fmt.p, fmt.smallest_normal, fmt.largest_finite)

    def nudge(self, fmt: Format, values: np.ndarray, ulps: int) -> np.ndarray:
        return self.stream.nudge(values, ulps, fmt.p, fmt.smallest_normal, fmt.largest_finite)


def draws_for(rng: np.random.Generator) -> "NumpyDraws | CompiledDraws":
    """Compiled draws where numba is installed and ``rng`` is a PCG64 generator; else numpy's
    (the same values)."""
    try:
        from .stream import supported
    except ImportError:  # no numba
        return NumpyDraws(rng)
    return CompiledDraws(rng) if supported(rng) else NumpyDraws(rng)


class BlockSampler(_NumpySampler):
    """For sweeps: values from :func:`sampling.fast_values`, rounding and nudging whole arrays,
    one lr per block of ``block`` cases.  ``draws``: where its random values come from
    (:func:`draws_for`; default numpy's, from ``rng``)."""

    def __init__(self, fmt: Format, rng: np.random.Generator, n: int,
                 block: int = LR_BLOCK, draws: "NumpyDraws | CompiledDraws | None" = None
                 ) -> None:
        super().__init__(fmt, rng, n)
        self.block = block
        self.draws = draws if draws is not None else NumpyDraws(rng)

    def integers(self, lo: int, hi: int, k: int) -> np.ndarray:
        return self.draws.integers(lo, hi, k)

    def uniform(self, lo: float, hi: float, k: int) -> np.ndarray:
        return self.draws.uniform(lo, hi, k)

    def choice(self, options: list, k: int) -> np.ndarray:
        return self.draws.choice(np.array(options), k)

    def coin(self, p: float) -> np.ndarray:
        return self.draws.below(p, self.n)

    def values(self, lo: "int | None" = None, hi: "int | None" = None, *, special: float = 0.02,
               size: "int | None" = None) -> np.ndarray:
        return self.draws.values(self.fmt, lo, hi, special, self.n if size is None else size)

    def values_where(self, where: np.ndarray, lo, hi) -> np.ndarray:
        return self.values(lo, hi, size=len(where))

    def rate(self, draw: Callable, scale: Any = 1.0) -> np.ndarray:
        blocks = -(-self.n // self.block)
        return np.repeat(draw(blocks, 1.0), self.block)[:self.n]

    def repeat(self, draw: Callable) -> np.ndarray:
        return _repeat_runs(draw, self.n, SAME_PARAMS_RUN)

    def round(self, values: np.ndarray) -> np.ndarray:
        return self.draws.round(self.fmt, values)

    def nudge(self, values: np.ndarray, ulps: int = 4) -> np.ndarray:
        """Each value moved by a random whole number of its quanta in [-ulps, ulps] (finite)."""
        return self.draws.nudge(self.fmt, values, ulps)

    def nudge_where(self, where: np.ndarray, values: np.ndarray, others: np.ndarray,
                    ulps: int) -> np.ndarray:
        return np.where(where, self.nudge(values, ulps), others)


def regime_cases(fmt: Format, regime: str, rng: np.random.Generator, n: int) -> list[Case]:
    """``n`` cases of ``regime`` in ``fmt`` (:class:`CaseSampler`): finite format values as
    Python floats; a draw that overflows is drawn again."""
    draw = _regime(regime).draw
    out: list[Case] = []
    while len(out) < n:
        with np.errstate(all="ignore"):
            cols = draw(CaseSampler(fmt, rng, n - len(out)))
        for case in zip(*(c.tolist() for c in cols)):
            if all(np.isfinite(case)):
                out.append(Case(*(float(v) for v in case)))
    return out


def regime_arrays(fmt: Format, regime: str, rng: np.random.Generator, n: int,
                  lr_block: int = LR_BLOCK) -> tuple[np.ndarray, ...]:
    """``n`` cases of ``regime`` as five float64 arrays (w, b, x, t, lr) of finite format
    values (:class:`BlockSampler`: a different stream from :func:`regime_cases`)."""
    draw = _regime(regime).draw
    draws = draws_for(rng)
    try:
        with np.errstate(all="ignore"):
            w, b, x, t, lr = draw(BlockSampler(fmt, rng, n, lr_block, draws))
    finally:
        draws.close()  # (the generator goes on after these draws)
    t = np.where(np.isfinite(t), t, b)  # y overflowed: any finite target will do
    return w, b, x, t, lr
