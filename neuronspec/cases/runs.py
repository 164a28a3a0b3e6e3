"""The cases of runs of SGD with options (spec/neuron.md 8): seeded runs for the run check,
and seeded single steps from a drawn state for the soundness measurement and the property
step-from.  Values are values of their formats (``sampling.random_values``)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from reference.formats import Format, get_format
from reference.optim import BUFFERS, State
from reference.step import INPUTS

from .regimes import LR_BLOCK
from .sampling import random_values

__all__ = ["STEP_REGIMES", "draw_runs", "draw_step", "draw_states", "draw_step_arrays",
           "draw_run_arrays", "state_at", "step_at", "binary64_rates"]

#: How the values of a drawn step are drawn: moderate, t next to w*x + b (cancellation in
#: y - t), or at the bottom of the format.
STEP_REGIMES = ("moderate", "cancel", "tiny")


def _values(fmt: Format, rng: np.random.Generator, n: int, lo: int, hi: int) -> list[float]:
    return [float(v) for v in random_values(fmt, rng, n, emin=lo, emax=hi, special=0.0)]


def draw_runs(fmt: Format, seed: int, count: int, steps: int, index: int
              ) -> list[tuple[float, float, list[tuple[float, float, float]]]]:
    """``count`` seeded runs (w0, b0, data) of ``steps`` steps: moderate values, with t close
    to w*x + b in every other run (cancellation in y - t, where the rounding shows most)."""
    rng = np.random.default_rng([seed, index, 15])
    span = min(8, fmt.emax // 4)
    runs = []
    for r in range(count):
        w0, b0 = _values(fmt, rng, 2, -span, span)
        xs = _values(fmt, rng, steps, -span // 2, span // 2)
        ts = _values(fmt, rng, steps, -span, span)
        lrs = [abs(v) for v in _values(fmt, rng, steps, -8, -2)]
        if r % 2:  # t near w0*x + b0: the first step cancels
            ts[0] = float(fmt.round(Fraction(w0) * Fraction(xs[0]) + Fraction(b0)))
        runs.append((w0, b0, list(zip(xs, ts, lrs))))
    return runs


def draw_step(fmt: Format, options: dict, rng: np.random.Generator, regime: str
              ) -> tuple[State, tuple[float, float, float]]:
    """One step of a run to measure: (state, (x, t, lr)); buffers where the options keep them,
    on a later step (three steps in four)."""
    buffered = options["momentum"] != 0
    later = buffered and rng.random() < 0.75
    if regime == "tiny":
        lo, hi = fmt.emin - 2, fmt.emin + 4
        w, b, t = _values(fmt, rng, 3, lo, hi)
        x = _values(fmt, rng, 1, -2, 2)[0]
        lr = abs(_values(fmt, rng, 1, -4, 0)[0])
    else:
        span = min(8, fmt.emax // 4)
        w, b, x, t = _values(fmt, rng, 4, -span, span)
        lr = abs(_values(fmt, rng, 1, -10, -1)[0])
        if regime == "cancel":  # t next to fl(fl(w*x) + b): r is tiny
            y = fmt.round(Fraction(fmt.round(Fraction(w) * Fraction(x))) + Fraction(b))
            t = y if rng.random() < 0.5 else float(np.nextafter(y, np.inf))
            t = fmt.round(Fraction(t))
    bufs: list = [None, None]
    if later:
        B = get_format(options["buffer_format"])
        lo = B.emin - 2 if regime == "tiny" else -8
        bufs = _values(B, rng, 2, lo, lo + 12)
    return State(w, b, *bufs), (x, t, lr)


def draw_states(fmt: Format, seed: tuple[int, int], count: int, options: dict
                ) -> list[tuple[State, tuple[float, float, float]]]:
    """``count`` seeded (state, (x, t, lr)) for the property step-from (R3): steps of
    :func:`draw_step`, and with momentum buffers that no short run reaches: signed zeros,
    subnormals of the buffer format, and no buffer (a first step)."""
    rng = np.random.default_rng([*seed, count, 3])
    B = get_format(options["buffer_format"])
    out = []
    for i in range(count):
        state, step = draw_step(fmt, options, rng, STEP_REGIMES[i % len(STEP_REGIMES)])
        if options["momentum"] != 0 and i % 4 < 3:
            bufs = ([0.0, -0.0], _values(B, rng, 2, B.emin - B.p + 1, B.emin - 1),
                    [None, None])[i % 4]
            state = State(state.w, state.b, *bufs)
        out.append((state, step))
    return out


def draw_step_arrays(fmt: Format, options: dict, seed: "int | tuple[int, ...]", index: int,
                     n: int, later: "bool | None" = None
                     ) -> tuple[dict[str, np.ndarray], bool, list[tuple[str, int, int]]]:
    """Chunk ``index`` of a sweep of steps from drawn states: :func:`draw_step`'s
    distribution on arrays (its regimes in equal parts, ``slices`` as (regime, start, stop);
    one lr per block of ``LR_BLOCK`` steps, as the batch protocols take it),
    first steps in the even chunks and later steps (buffers drawn too) in the odd ones where
    the options keep buffers (``later``: all later steps or all first steps instead).
    ``seed``: an int or a tuple of them.  Returns the columns w, b, x, t, lr, buf_w, buf_b
    (buffers None on a first step), ``later`` and the slices."""
    rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), index, 31])
    later = options["momentum"] != 0 and (index % 2 == 1 if later is None else later)
    B = get_format(options["buffer_format"])
    parts, slices, start = [], [], 0
    for k, regime in enumerate(STEP_REGIMES):
        m = n // len(STEP_REGIMES) + (1 if k < n % len(STEP_REGIMES) else 0)
        if regime == "tiny":
            lo, hi = fmt.emin - 2, fmt.emin + 4
            w, b, t = (random_values(fmt, rng, m, emin=lo, emax=hi, special=0.0)
                       for _ in range(3))
            x = random_values(fmt, rng, m, emin=-2, emax=2, special=0.0)
            lr = _blocks(np.abs(random_values(fmt, rng, -(-m // LR_BLOCK), emin=-4, emax=0,
                                              special=0.0)), m)
            blo = B.emin - 2
        else:
            span = min(8, fmt.emax // 4)
            w, b, x, t = (random_values(fmt, rng, m, emin=-span, emax=span, special=0.0)
                          for _ in range(4))
            lr = _blocks(np.abs(random_values(fmt, rng, -(-m // LR_BLOCK), emin=-10, emax=-1,
                                              special=0.0)), m)
            blo = -8
            if regime == "cancel":  # t next to fl(fl(w*x) + b): r is tiny
                from reference.batch.arith import round_array

                y = round_array(fmt, round_array(fmt, w * x) + b)
                up = rng.random(m) < 0.5
                t = np.where(up, round_array(fmt, np.nextafter(y, np.inf)), y)
        bufs = [random_values(B, rng, m, emin=blo, emax=blo + 12, special=0.0)
                for _ in range(2)] if later else [None, None]
        parts.append((w, b, x, t, lr, *bufs))
        slices.append((regime, start, start + m))
        start += m
    cols = {k: None if parts[0][i] is None else  # (float64: round_array works in x87)
            np.concatenate([p[i] for p in parts]).astype(np.float64)
            for i, k in enumerate(INPUTS + BUFFERS)}
    return cols, later, slices


def draw_run_arrays(fmt: Format, seed: "int | tuple[int, ...]", index: int, n: int,
                    steps: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray],
                                         list[tuple[str, int, int]]]:
    """Chunk ``index`` of a sweep of whole runs: ``n`` runs of ``steps`` steps, in
    :data:`STEP_REGIMES` in equal parts (``slices``: (regime, first run, last run + 1)) as
    :func:`draw_step_arrays` draws a step: moderate values; the same with ``t_1`` next to
    ``fl(fl(w0*x_1) + b0)`` (cancellation at step 1); or ``w0``, ``b0``, ``t`` at the bottom of
    the format.  ``x`` and ``lr`` are narrower than a step's (as :func:`draw_runs` draws them):
    ``lr*x**2`` mostly below 2, so that most runs converge rather than overflow.  Returns
    (w0, b0, data, slices), ``data`` x, t, lr of shape (steps, n), each step's lr one value per
    block of ``LR_BLOCK`` runs (spec/protocol.md R4)."""
    rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), index, 47])
    K = steps
    parts, slices, start = [], [], 0
    for k, regime in enumerate(STEP_REGIMES):
        m = n // len(STEP_REGIMES) + (1 if k < n % len(STEP_REGIMES) else 0)
        blocks = -(-m // LR_BLOCK)
        if regime == "tiny":
            lo, hi = fmt.emin - 2, fmt.emin + 4
            w0, b0 = (random_values(fmt, rng, m, emin=lo, emax=hi, special=0.0)
                      for _ in range(2))
            t = random_values(fmt, rng, K * m, emin=lo, emax=hi, special=0.0).reshape(K, m)
            x = random_values(fmt, rng, K * m, emin=-2, emax=0, special=0.0).reshape(K, m)
            rates = random_values(fmt, rng, K * blocks, emin=-6, emax=-1, special=0.0)
        else:
            span = min(8, fmt.emax // 4)
            w0, b0 = (random_values(fmt, rng, m, emin=-span, emax=span, special=0.0)
                      for _ in range(2))
            x = random_values(fmt, rng, K * m, emin=-(span // 2), emax=span // 2,
                              special=0.0).reshape(K, m)
            t = random_values(fmt, rng, K * m, emin=-span, emax=span, special=0.0).reshape(K, m)
            rates = random_values(fmt, rng, K * blocks, emin=-10, emax=-2, special=0.0)
            if regime == "cancel":  # t_1 next to fl(fl(w0*x_1) + b0): r is tiny at step 1
                from reference.batch.arith import round_array

                y = round_array(fmt, round_array(fmt, w0 * x[0]) + b0)
                up = rng.random(m) < 0.5
                t[0] = np.where(up, round_array(fmt, np.nextafter(y, np.inf)), y)
        lr = np.repeat(np.abs(rates).reshape(K, blocks), LR_BLOCK, axis=1)[:, :m]
        parts.append((w0, b0, x, t, lr))
        slices.append((regime, start, start + m))
        start += m
    w0, b0 = (np.concatenate([p[i] for p in parts]).astype(np.float64) for i in range(2))
    data = {key: np.concatenate([p[i] for p in parts], axis=1).astype(np.float64)
            for i, key in enumerate(("x", "t", "lr"), 2)}
    return w0, b0, data, slices
def binary64_rates(rates: np.ndarray, seed: "int | tuple[int, ...]") -> np.ndarray:
    """Learning rates as a torch user passes them under lr-binary64 (spec/tolerances.md 1):
    each drawn rate times ``1 + d`` with a seeded ``|d| < 2^-6`` of 53 bits, a binary64 value
    that no narrower format holds (zeros stay zeros)."""
    rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), 53])
    rates = np.asarray(rates, dtype=np.float64)
    return rates * (1 + rng.uniform(-2.0 ** -6, 2.0 ** -6, rates.shape))


def _blocks(rates: np.ndarray, m: int) -> np.ndarray:
    """One learning rate per block of ``LR_BLOCK`` consecutive steps (spec/protocol.md R4)."""
    return np.repeat(rates, LR_BLOCK)[:m]


def state_at(cols: dict, j: int) -> State:
    """The state step ``j`` of :func:`draw_step_arrays`'s columns starts from."""
    return State(*(None if cols[k] is None else float(cols[k][j])
                   for k in ("w", "b") + BUFFERS))


def step_at(cols: dict, j: int) -> tuple[float, float, float]:
    """The data (x, t, lr) of step ``j`` of :func:`draw_step_arrays`'s columns."""
    return tuple(float(cols[k][j]) for k in ("x", "t", "lr"))
