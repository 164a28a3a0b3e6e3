"""The cases of an exhaustive sweep: every pair of finite values of two inputs, the other three
taken from a small named grid (or fixed), in deterministic chunks.

A 16-bit format has 63,488 (float16) or 65,280 (bfloat16) finite values, so two inputs make about
2**32 pairs per grid point: few enough to run every one.  Case ``k`` of an exhaustive sweep is
fixed forever by the order below, so that chunk ``index`` holds the same cases in every run,
for every implementation and every number of workers:

- the values of a format in :func:`finite_values`'s order (ascending, -0 before +0);
- grid point outermost (a chunk meets few points, one labelled slice each), then the first
  swept input, then the second, the pair taken in ``INPUTS`` order (w, b, x, t, lr).

So case ``k`` is grid point ``k // V**2``, first value ``(k // V) % V``, second ``k % V``,
where ``V`` is the number of finite values.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from typing import Mapping, Optional

import numpy as np

from reference.formats import Format, exact_decimal, float_hex, get_format, parse_exact
from reference.step import INPUTS

from ..errors import UsageError

__all__ = ["finite_values", "Exhaustive", "GRIDS", "MAX_VALUES"]

#: The most finite values a format may have to be swept exhaustively (2**16: every 16-bit
#: format fits, float32's 4.3e9 values -- 1.8e19 pairs -- do not).
MAX_VALUES = 1 << 16

#: The named grids of the three inputs not swept: each point assigns every input a value (C99
#: hex, exact in float16 *and* bfloat16), and the swept two are dropped from it.  The values:
#: w = 0.75 and x = 1.5 are not powers of two, so a product with a swept value rounds (a power
#: of two would make it exact except at underflow); b = 0 makes y the rounded product w*x
#: itself; t = 1 puts the cancellation of r = y - t at w*x = 1, inside the swept square;
#: lr = 0x1.9ap-4 (0.10009765625, the seed example's 0.1 as bfloat16 rounds it) is not a power
#: of two either, so lr*dL_dw rounds too.
#: "small" is the default point crossed with a nonzero b (-0x1.9ap-4, the seed example's -0.1 in
#: bfloat16: the forward sum rounds and may fuse), a far target t = 1000 (|r| > 256 for
#: every small y: r*r overflows float16) and lr = 1 (the update is w - dL_dw itself), 8 points;
#: its first point is the default one.  Where the swept pair is one of the varied inputs, the
#: points that become equal are kept once (in their first place).
GRIDS: dict[str, tuple[dict[str, str], ...]] = {
    "default": ({"w": "0x1.8p-1", "b": "0x0p+0", "x": "0x1.8p+0", "t": "0x1p+0",
                 "lr": "0x1.9ap-4"},),
    "small": tuple({"w": "0x1.8p-1", "b": b, "x": "0x1.8p+0", "t": t, "lr": lr}
                   for b in ("0x0p+0", "-0x1.9ap-4")
                   for t in ("0x1p+0", "0x1.f4p+9")
                   for lr in ("0x1.9ap-4", "0x1p+0")),
}


def _positive_count(fmt: Format) -> int:
    """The number of finite values of one sign (zero included): every biased exponent below the
    all-ones one (IEEE formats have emin = 1 - emax), times every fraction."""
    return (2 * fmt.emax + 1) << (fmt.p - 1)


def _require_small(fmt: Format) -> None:
    count = 2 * _positive_count(fmt)
    if count > MAX_VALUES:
        raise UsageError(
            f"--exhaustive: {fmt.name} has {count:,} finite values ({float(count) ** 2:.1e} "
            f"pairs), too many to sweep every pair; use --dtype float16 or bfloat16 with "
            f"--exhaustive, or a seeded sweep (--cases N) for {fmt.name}")


@lru_cache(maxsize=None)
def finite_values(fmt: "Format | str") -> np.ndarray:
    """Every finite value of a 16-bit format exactly once, as a read-only float64 array (cached
    per process), in ascending order with -0 just before +0 (IEEE 754 totalOrder).

    Built from the encodings: the positive value of encoding ``c`` (0 <= c < N, N finite values
    of each sign) is at index ``N + c`` and its negation at ``N - 1 - c``.  A UsageError for a
    format too wide to enumerate pairs of (float32, float64)."""
    fmt = get_format(fmt)
    _require_small(fmt)
    frac_bits = fmt.p - 1
    code = np.arange(_positive_count(fmt), dtype=np.int64)
    biased, fraction = code >> frac_bits, code & ((1 << frac_bits) - 1)
    # a subnormal (biased exponent 0) has no hidden bit and the exponent of biased 1
    significand = np.where(biased > 0, fraction | (1 << frac_bits), fraction)
    exponent = np.maximum(biased, 1) + (fmt.emin - 1) - frac_bits
    positive = np.ldexp(significand.astype(np.float64), exponent)  # exact: p <= 53 bits
    values = np.concatenate([-positive[::-1], positive])  # -positive[0] is -0.0
    values.setflags(write=False)  # shared by every caller of the cache
    return values


def _format(fmt: "Format | str") -> Format:
    try:
        fmt = get_format(fmt)
    except ValueError as exc:
        raise UsageError(f"--dtype: {exc}") from None
    _require_small(fmt)
    return fmt


def _pair(over) -> tuple[str, str]:
    """Two different input names, in ``INPUTS`` order: w,x and x,w are the same sweep."""
    over = [name.strip() for name in over]
    bad = [name for name in over if name not in INPUTS]
    if len(over) != 2 or bad or over[0] == over[1]:
        why = (f"{bad[0]!r} is not an input" if bad else
               f"{over[0]} is named twice" if len(over) == 2 else f"{len(over)} inputs given")
        raise UsageError(f"--exhaustive: {why}; name two different inputs of "
                         f"{', '.join(INPUTS)} (e.g. --exhaustive w,x)")
    return tuple(sorted(over, key=INPUTS.index))  # type: ignore[return-value]


def _check_fixed_name(name: str, over: tuple[str, str]) -> None:
    others = ", ".join(n for n in INPUTS if n not in over)
    if name not in INPUTS:
        raise UsageError(f"--fix: {name!r} is not an input; fix some of {others}")
    if name in over:
        raise UsageError(f"--fix: {name} is swept by --exhaustive {','.join(over)}; fix only "
                         f"{others}")


def _value_text(value: float) -> str:
    return f"{float_hex(value)} ({exact_decimal(value)})"


def _not_a_value(fmt: Format, name: str, text: str, q: Fraction) -> UsageError:
    """The error for a --fix value (``text``: as the user wrote it, quoted) that is not exactly
    a finite value of the format, naming the nearest ones (hex, copyable, and decimal)."""
    r = fmt.round(q)
    if not math.isfinite(r):
        return UsageError(f"--fix: {name} = {text} is beyond {fmt.name}'s range; the largest "
                          f"finite {fmt.name} values are ±{_value_text(fmt.largest_finite)}")
    below, above = (r, fmt.next_up(r)) if Fraction(r) < q else (fmt.next_down(r), r)
    near = [_value_text(v) for v in (below, above) if math.isfinite(v)]
    return UsageError(f"--fix: {name} = {text} is not a {fmt.name} value; the nearest "
                      f"{'are ' + ' and '.join(near) if len(near) == 2 else 'is ' + near[0]}: "
                      f"give {'one of them' if len(near) == 2 else 'it'}")


def _parse_value(fmt: Format, name: str, text: str) -> float:
    """A --fix literal (decimal or C99 hex) that must be exactly a finite value of ``fmt``."""
    try:
        q = parse_exact(text)
    except (ValueError, ZeroDivisionError) as exc:
        raise UsageError(f"--fix: {name}: {exc}") from None
    r = fmt.round(q)
    if not math.isfinite(r) or Fraction(r) != q:
        raise _not_a_value(fmt, name, repr(text), q)
    # an exact zero has lost its sign in the Fraction: the literal's keeps it
    return -0.0 if r == 0 and text.strip().startswith("-") else r


class Exhaustive:
    """An exhaustive sweep's cases: every pair of finite values of the inputs ``over`` (two
    names of ``INPUTS``, taken in ``INPUTS`` order), at every point of the grid ``grid`` for the
    other three inputs; ``fixed`` (name -> a finite value of ``fmt``) overrides the grid for
    the inputs it names.  Small and picklable: a worker builds the value table once per process
    (:func:`finite_values`), not per chunk."""

    def __init__(self, fmt: "Format | str", over: "tuple[str, str] | list[str]",
                 fixed: Optional[Mapping[str, float]] = None, grid: str = "default") -> None:
        fmt = _format(fmt)
        over = _pair(over)
        if grid not in GRIDS:
            raise UsageError(f"--grid: unknown grid {grid!r}; choose one of {', '.join(GRIDS)}")
        fixed = dict(fixed or {})
        for name, value in fixed.items():
            _check_fixed_name(name, over)
            if not isinstance(value, float) or not math.isfinite(value):
                raise UsageError(f"--fix: {name} = {value!r} is not a finite {fmt.name} value "
                                 f"(give a float)")
            if not fmt.contains(value):
                raise _not_a_value(fmt, name, repr(value), Fraction(value))
        self.fmt, self.grid = fmt, grid
        self.over: tuple[str, str] = over
        self.others: tuple[str, ...] = tuple(n for n in INPUTS if n not in self.over)
        self.fixed: dict[str, float] = {n: fixed[n] for n in self.others if n in fixed}
        # the grid's points on the other inputs, --fix applied, each distinct point once (hex
        # text tells -0 from +0, as == would not)
        points: dict[tuple[str, ...], tuple[float, ...]] = {}
        for point in GRIDS[grid]:
            values = tuple(self.fixed.get(n, float.fromhex(point[n])) for n in self.others)
            points.setdefault(tuple(float_hex(v) for v in values), values)
        self.points: tuple[tuple[float, ...], ...] = tuple(points.values())
        self.labels: tuple[str, ...] = tuple(
            ",".join(f"{n}={h}" for n, h in zip(self.others, key)) for key in points)

    @classmethod
    def parse(cls, fmt: "Format | str", over_text: str, fix_text: Optional[str] = None,
              grid: Optional[str] = None) -> "Exhaustive":
        """From the command line's ``--exhaustive w,x [--fix b=0,t=1,lr=0x1p-4] [--grid NAME]``:
        each fixed value a decimal or C99 hex literal that is exactly a finite value of
        ``fmt``.  Every mistake is a UsageError of one line saying the fix."""
        fmt = _format(fmt)
        over = _pair(over_text.split(","))
        fixed: dict[str, float] = {}
        for part in (fix_text.split(",") if fix_text and fix_text.strip() else []):
            name, eq, text = (s.strip() for s in part.partition("="))
            if not eq or not name or not text:
                raise UsageError(f"--fix: {part.strip()!r} is not NAME=VALUE "
                                 f"(e.g. --fix b=0,t=1,lr=0x1p-4)")
            if name in fixed:
                raise UsageError(f"--fix: {name} is given twice; give it once")
            _check_fixed_name(name, over)  # before its value: the name is the first mistake
            fixed[name] = _parse_value(fmt, name, text)
        return cls(fmt, over, fixed, "default" if grid is None else grid)

    # --- the cases ---------------------------------------------------------------------------
    @property
    def values(self) -> np.ndarray:
        """The format's finite values in sweep order (cached per process, never pickled)."""
        return finite_values(self.fmt)

    @property
    def count(self) -> int:
        """The number of finite values of the format."""
        return len(self.values)

    @property
    def pairs(self) -> int:
        return self.count ** 2

    @property
    def cases(self) -> int:
        """The number of cases: pairs times grid points."""
        return self.pairs * len(self.points)

    @property
    def label(self) -> str:
        """How reports and tables name the sweep's cases."""
        return f"exhaustive over ({', '.join(self.over)})"

    def chunk(self, index: int, n: int
              ) -> tuple[dict[str, np.ndarray], list[tuple[str, int, int]]]:
        """Cases ``[index*n, index*n + n)`` (clipped to :attr:`cases`) as five float64 arrays in
        ``INPUTS`` order, and one slice (grid point label, start, stop) per grid point met."""
        if index < 0 or n < 1:
            raise ValueError(f"chunk({index}, {n}): need index >= 0 and n >= 1")
        table = self.values
        pairs = len(table) ** 2
        cases = pairs * len(self.points)
        start = min(index * n, cases)
        stop = min(start + n, cases)
        cols = {name: np.empty(stop - start) for name in INPUTS}
        first, second = cols[self.over[0]], cols[self.over[1]]
        slices: list[tuple[str, int, int]] = []
        if stop == start:
            return cols, slices
        for g in range(start // pairs, (stop - 1) // pairs + 1):
            a, b = max(start, g * pairs), min(stop, (g + 1) * pairs)
            lo, hi = a - start, b - start
            for name, value in zip(self.others, self.points[g]):
                cols[name][lo:hi] = value
            _fill_pairs(table, a - g * pairs, b - g * pairs, first[lo:hi], second[lo:hi])
            slices.append((self.labels[g], lo, hi))
        return cols, slices

    def describe(self) -> dict:
        """What a sweep record says of its cases (values in C99 hex)."""
        return {"exhaustive": list(self.over), "format": self.fmt.name,
                "order": "grid point, then " + ", then ".join(self.over)
                         + "; values ascending, -0 before +0",
                "values": self.count, "pairs": self.pairs, "cases": self.cases,
                "grid": self.grid, "fixed": {n: float_hex(v) for n, v in self.fixed.items()},
                "points": [{n: float_hex(v) for n, v in zip(self.others, p)}
                           for p in self.points]}

    def options(self) -> str:
        """The ``neuronspec sweep`` options that give these cases."""
        text = f"--exhaustive {','.join(self.over)} --grid {self.grid}"
        if self.fixed:
            text += " --fix " + ",".join(f"{n}={float_hex(v)}" for n, v in self.fixed.items())
        return text

    def __repr__(self) -> str:
        fixed = "".join(f", {n}={float_hex(v)}" for n, v in self.fixed.items())
        return f"Exhaustive({self.fmt.name}, over={','.join(self.over)}, grid={self.grid}{fixed})"


def _fill_pairs(table: np.ndarray, a: int, b: int, first: np.ndarray,
                second: np.ndarray) -> None:
    """Pairs ``[a, b)`` of ``table`` x ``table`` (pair k = (table[k // V], table[k % V])) into
    ``first`` and ``second``: row by row with broadcasting, no index arrays (memory speed)."""
    v = len(table)
    i, j = divmod(a, v)
    take = min(v - j, b - a)  # the rest of the first row
    first[:take] = table[i]
    second[:take] = table[j:j + take]
    pos, i = take, i + 1
    rows = (b - a - pos) // v  # whole rows
    if rows:
        first[pos:pos + rows * v].reshape(rows, v)[:] = table[i:i + rows, None]
        second[pos:pos + rows * v].reshape(rows, v)[:] = table
        pos, i = pos + rows * v, i + rows
    if pos < b - a:  # the start of the last row
        first[pos:] = table[i]
        second[pos:] = table[:b - a - pos]
