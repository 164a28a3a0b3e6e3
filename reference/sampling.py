"""Random values of a format, drawn from its encodings (numpy, vectorised, seeded).

Drawing the exponent field uniformly makes the values log-uniform over the whole range, so
subnormals, tiny and huge magnitudes all appear; ``special`` mixes in signed zeros, the
smallest subnormal, the smallest normal and the largest finite value.
"""

from __future__ import annotations

import numpy as np

from .formats import Format

__all__ = ["random_values", "bits_of"]


def random_values(
    fmt: Format,
    rng: np.random.Generator,
    size: int,
    *,
    emin: "int | None" = None,
    emax: "int | None" = None,
    special: float = 0.02,
) -> np.ndarray:
    """``size`` random finite values of ``fmt`` as a float64 array (exact: every value of the
    four formats is a binary64 value).

    Binade exponents are uniform in [emin, emax] (defaults: the format's, with subnormals
    counted as the binade below emin); signs are uniform.
    """
    lo = fmt.emin - 1 if emin is None else max(emin, fmt.emin - 1)
    hi = fmt.emax if emax is None else min(emax, fmt.emax)
    if lo > hi:
        raise ValueError(f"empty exponent range [{emin}, {emax}] for {fmt.name}")
    e = rng.integers(lo, hi + 1, size=size)
    frac_bits = fmt.p - 1
    # mantissa fraction: p-1 random bits (two 32-bit draws cover float64's 52 bits)
    m = (rng.integers(0, 1 << 26, size=size, dtype=np.int64) << 26) | rng.integers(
        0, 1 << 26, size=size, dtype=np.int64)
    m &= (1 << frac_bits) - 1
    normal = e >= fmt.emin
    significand = np.where(normal, m + (1 << frac_bits), m).astype(np.float64)
    scale = np.where(normal, e, fmt.emin) - frac_bits
    values = np.ldexp(significand, scale.astype(np.int64))
    values *= np.where(rng.random(size) < 0.5, -1.0, 1.0)
    if special > 0:
        specials = np.array([0.0, -0.0, fmt.smallest_subnormal, -fmt.smallest_subnormal,
                             fmt.smallest_normal, fmt.largest_finite, -fmt.largest_finite, 1.0])
        pick = rng.random(size) < special
        values[pick] = rng.choice(specials, size=int(pick.sum()))
    return values


def bits_of(values: np.ndarray) -> np.ndarray:
    """The binary64 encodings of ``values`` as unsigned integers, for bitwise comparison of
    values of any of the four formats (signed zeros differ; every NaN maps to one pattern)."""
    values = np.asarray(values, dtype=np.float64)
    nan = np.isnan(values)
    bits = np.where(nan, np.float64(np.nan), values).view(np.uint64).copy()
    bits[nan] = np.uint64(0x7FF8000000000000)
    return bits
