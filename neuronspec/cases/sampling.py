"""Random values of a format, drawn from its encodings (numpy, vectorised, seeded).

Drawing the exponent field uniformly makes the values log-uniform over the whole range, so
subnormals, tiny and huge magnitudes all appear; ``special`` mixes in signed zeros, the
smallest subnormal, the smallest normal and the largest finite value.
"""

from __future__ import annotations

import numpy as np

from reference.formats import Format

__all__ = ["random_values", "fast_values", "fast_parameters", "bits_of", "assemble"]


def _binades(fmt: Format, emin: "int | None", emax: "int | None") -> tuple[int, int]:
    """The binade exponents drawn from: [emin, emax] within the format's (emin - 1 stands for
    the subnormals)."""
    lo = fmt.emin - 1 if emin is None else max(emin, fmt.emin - 1)
    hi = fmt.emax if emax is None else min(emax, fmt.emax)
    if lo > hi:
        raise ValueError(f"empty exponent range [{emin}, {emax}] for {fmt.name}")
    return lo, hi


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
    lo, hi = _binades(fmt, emin, emax)
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


def fast_values(
    fmt: Format,
    rng: np.random.Generator,
    size: int,
    *,
    emin: "int | None" = None,
    emax: "int | None" = None,
    special: float = 0.02,
) -> np.ndarray:
    """As :func:`random_values` (same distribution, a different stream), several times faster:
    one raw 64-bit draw per value (two for float64), assembled into the binary64 encoding with
    integer operations; for sweeps.

    Bits of a draw: mantissa from the top, binade from bits 16..31 (``(r * span) >> 16``, a
    bias below span/65536), sign from bit 0, special choice from bits 1..15."""
    frac_bits, lo, hi, threshold, specials = fast_parameters(fmt, emin, emax, special)
    raw = rng.bit_generator.random_raw(size)
    other = rng.bit_generator.random_raw(size) if frac_bits > 32 else raw
    try:
        from .compiled import assemble_values
    except ImportError:  # no numba: the numpy definition
        return assemble(raw, other, frac_bits, lo, hi, fmt.emin, threshold, specials)
    out = np.empty(size)
    assemble_values(raw, other, frac_bits, lo, hi - lo + 1, fmt.emin, threshold, specials, out)
    return out


def fast_parameters(fmt: Format, emin: "int | None", emax: "int | None", special: float
                    ) -> tuple[int, int, int, int, np.ndarray]:
    """What :func:`fast_values` assembles values with: the fraction bits, the binades [lo, hi],
    the 15-bit threshold below which a draw picks a special value, and the special values."""
    lo, hi = _binades(fmt, emin, emax)
    specials = np.array([0.0, -0.0, fmt.smallest_subnormal, -fmt.smallest_subnormal,
                         fmt.smallest_normal, fmt.largest_finite, -fmt.largest_finite, 1.0])
    return fmt.p - 1, lo, hi, int(special * 0x8000), specials


def assemble(raw, other, frac_bits, lo, hi, emin, threshold, specials) -> np.ndarray:
    """The values of :func:`fast_values` from its raw draws (``compiled.assemble_values`` is the
    same, compiled)."""
    span = np.uint64(hi - lo + 1)
    e = (((other >> np.uint64(16)) & np.uint64(0xFFFF)) * span) >> np.uint64(16)
    e = e.view(np.int64) + (lo + 1023)  # biased binary64 exponent of the binade
    m = raw >> np.uint64(64 - frac_bits) if frac_bits else np.zeros(len(raw), np.uint64)
    bits = (e.view(np.uint64) << np.uint64(52)) | (m << np.uint64(52 - frac_bits))
    bits |= (other & np.uint64(1)) << np.uint64(63)
    values = bits.view(np.float64)
    sub = e < emin + 1023  # the binade below emin: subnormals of the format
    if sub.any():
        sign = np.where((other[sub] & np.uint64(1)).astype(bool), -1.0, 1.0)
        values[sub] = sign * (m[sub].astype(np.float64) * 2.0 ** (emin - frac_bits))
    if threshold > 0:
        choice = (other >> np.uint64(1)) & np.uint64(0x7FFF)
        pick = np.flatnonzero(choice < np.uint64(threshold))
        values[pick] = specials[(choice[pick] & np.uint64(7)).astype(np.int64)]
    return values
