"""Bitwise checks of ``reference.formats`` against independent implementations.

``Format.round`` is the ground truth that the rest of neuronspec compares hardware against,
so it is checked here against rounding code that shares nothing with it:

* float16 / float32: NumPy's float64 -> float16/float32 casts (correctly rounded from double);
* bfloat16: torch's and ml_dtypes' float32 -> bfloat16 casts (float32 sources, because a
  double -> bfloat16 cast may round twice via float32);
* float64: CPython's correctly rounded ``int / int`` true division, and x87 80-bit
  ``long double`` -> double casts where ``np.longdouble`` has a 64-bit significand;
* constants: ``numpy.finfo`` / ``ml_dtypes.finfo``; hex: glibc ``printf("%a")``.

All comparisons are on binary64 bit patterns: every value of the four formats widens exactly
and injectively to binary64, so equal float64 bits mean equal target bits, and the sign of
zero and infinities are compared exactly.  The random samples are built so that they cover
each format's whole exponent range (subnormals and overflow included), both signs, and exact
halfway cases, which random bit patterns alone almost never hit.

A check that cannot fail proves nothing, so ``test_mutants_are_caught_*`` feed deliberately
wrong roundings (toward zero, ties away, ties toward zero, flush-to-zero, late overflow)
through the same comparison routine and require it to report mismatches.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import platform
import random
import re
import struct
from decimal import Decimal
from fractions import Fraction
from typing import NamedTuple

import numpy as np
import pytest

from reference.formats import (
    BFLOAT16,
    FLOAT16,
    FLOAT32,
    FLOAT64,
    FORMATS,
    Format,
    float_hex,
    get_format,
    parse_hex,
    to_fraction,
)

try:  # bfloat16 oracle (also provides bfloat16's finfo); optional
    import ml_dtypes
except ImportError:  # pragma: no cover - depends on the environment
    ml_dtypes = None

SEED = 20261126
ALL = [FLOAT16, BFLOAT16, FLOAT32, FLOAT64]
NUMPY_DTYPE = {"float16": np.float16, "float32": np.float32, "float64": np.float64}
UINT = {"float16": np.uint16, "float32": np.uint32, "float64": np.uint64}

# (p, emin, emax) written down independently of reference/formats.py; checked against
# numpy/ml_dtypes finfo in test_constants_match_finfo and used to state expected edge values.
PARAMS = {
    "float16": (11, -14, 15),
    "bfloat16": (8, -126, 127),
    "float32": (24, -126, 127),
    "float64": (53, -1022, 1023),
}
TWO = Fraction(2)


def consts(name: str):
    """Independent exact constants: S (smallest subnormal), N (smallest normal), M (largest
    finite), ulp_M (spacing in the top binade) and U1 (ulp of 1)."""
    p, emin, emax = PARAMS[name]
    S = TWO ** (emin - p + 1)
    N = TWO**emin
    ulp_M = TWO ** (emax - p + 1)
    M = TWO ** (emax + 1) - ulp_M
    return S, N, M, ulp_M, TWO ** (1 - p)


# --- reporting and the comparison routine ------------------------------------------------------


def _bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def same(a: float, b: float) -> bool:
    """Bitwise equality of binary64 values: -0.0 != 0.0, inf == inf."""
    return _bits(a) == _bits(b)


class Ratio(NamedTuple):
    """An unnormalised numerator/denominator pair, rounded with ``round_ratio`` (a Fraction
    would be reduced first, hiding e.g. a tie given as 3n/3d from the general division path)."""

    num: int
    den: int


def round_any(fmt: Format, x) -> float:
    return fmt.round_ratio(x.num, x.den) if isinstance(x, Ratio) else fmt.round(x)


def show(x) -> str:
    """An exact hex spelling plus a decimal repr, for assertion messages."""
    if isinstance(x, Ratio):
        return f"round_ratio({x.num}, {x.den}) = {show(Fraction(x.num, x.den))}"
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return f"{x.hex()} ({x!r})"
    q = Fraction(x) if isinstance(x, (int, Fraction)) else to_fraction(x)  # mpf
    n, d = q.numerator, q.denominator
    if d & (d - 1) == 0:  # dyadic: exact hex literal with an odd significand
        m, e = _dyadic_parts(abs(q))
        exact = f"{'-' if n < 0 else ''}0x{m:x}p{e:+d}"
    else:
        exact = f"{n}/{d}"
    try:
        approx = repr(float(q))
    except OverflowError:
        approx = "beyond binary64"
    return f"{exact} (~{approx})"


def _compare(fmt: Format, sources, expected, rounder=None):
    rounder = rounder or functools.partial(round_any, fmt)
    got = np.array([rounder(s) for s in sources], dtype=np.float64)
    exp = np.asarray(expected, dtype=np.float64)
    assert got.shape == exp.shape
    bad = np.flatnonzero(got.view(np.uint64) != exp.view(np.uint64))
    return [(sources[i], float(exp[i]), float(got[i])) for i in bad], got


def mismatches(fmt: Format, sources, expected, rounder=None):
    """Round every source with ``rounder`` (default ``fmt.round``/``round_ratio``); return the
    (source, expected, got) triples whose binary64 bits differ from ``expected``."""
    return _compare(fmt, sources, expected, rounder)[0]


def assert_matches(fmt: Format, sources, expected, oracle: str, rounder=None,
                   subject: str = "") -> np.ndarray:
    """Fail with the first mismatches (format, input, both outputs); return the roundings."""
    bad, got = _compare(fmt, sources, expected, rounder)
    subject = subject or f"{fmt.name}.round"
    if bad:
        lines = [
            f"  input {show(s)}: {oracle} gives {show(e)}, {subject} gives {show(g)}"
            for s, e, g in bad[:8]
        ]
        pytest.fail(
            f"{fmt.name}: {len(bad)} of {len(sources)} roundings differ from {oracle}:\n"
            + "\n".join(lines)
        )
    return got


# --- random samples (built once per session) ----------------------------------------------------


def _move_ulps(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Move |x| by k binary64 ulps (integer steps on the bit pattern), keeping the sign."""
    mag = np.maximum(np.abs(x).view(np.int64) + k, 0)
    return np.copysign(mag.view(np.float64), x)


@functools.lru_cache(maxsize=None)
def narrow_sample(name: str):
    """>= 100k float64 sources for float16/float32 and their NumPy-cast expected values.

    Categories, concatenated (so a strided slice samples all of them):
      A  random binary64 bit patterns, exponent from below half the smallest subnormal
         to above the overflow threshold, both signs;
      B  random target values (all binades, subnormals included) moved by -3..3 binary64 ulps;
      C  exact midpoints between adjacent target values (a quarter of them subnormal),
         most exact, some moved by 1-2 binary64 ulps either way; the top one is the
         overflow threshold;
      D  magnitudes in [M, M + ulp(M)) around the overflow threshold, and below 3 S;
      plus +-0, +-inf, +-M, +-S.
    """
    dtype, uint = NUMPY_DTYPE[name], UINT[name]
    p, emin, emax = PARAMS[name]
    rng = np.random.default_rng(SEED)
    nbits = 8 * np.dtype(uint).itemsize
    inf_bits = (((1 << (nbits - p)) - 1) << (p - 1))

    # A
    n = 50_000
    e = rng.integers(1023 + emin - p - 2, 1023 + emax + 2, n, endpoint=True).astype(np.uint64)
    mant = rng.integers(0, 1 << 52, n, dtype=np.uint64)
    sign = rng.integers(0, 2, n, dtype=np.uint64) << np.uint64(63)
    a = (sign | (e << np.uint64(52)) | mant).view(np.float64)

    # B
    n = 30_000
    t = rng.integers(0, 1 << nbits, n, dtype=np.uint64).astype(uint)
    t = t[(t & inf_bits) != inf_bits]  # drop inf/NaN patterns
    b = _move_ulps(t.view(dtype).astype(np.float64), rng.integers(-3, 4, t.size))

    # C
    n = 30_000
    top = inf_bits - 1  # largest finite pattern
    lo = rng.integers(0, top, n, endpoint=True).astype(uint)
    lo[: n // 4] = rng.integers(0, 1 << (p - 1), n // 4).astype(uint)  # subnormal ties
    lo[:4] = [0, 1, (1 << (p - 1)) - 1, top]  # S/2, 3S/2, N - S/2, overflow threshold
    lower = lo.view(dtype).astype(np.float64)
    upper = (lo + uint(1)).view(dtype).astype(np.float64)
    upper[np.isinf(upper)] = 2.0 ** (emax + 1)
    mid = (lower + upper) / 2  # exact: both have <= p+1 bits, far inside binary64's range
    k = rng.choice([-2, -1, 0, 0, 0, 0, 0, 0, 1, 2], n)
    k[:4] = 0
    c = _move_ulps(mid, k) * rng.choice([-1.0, 1.0], n)

    # D
    S, N, M, ulp_M, _ = (float(v) for v in consts(name))
    n = 5_000
    d1 = (M + rng.random(n) * ulp_M) * rng.choice([-1.0, 1.0], n)
    d2 = (rng.random(n) * 3 * S) * rng.choice([-1.0, 1.0], n)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, M, -M, S, -S])

    src = np.concatenate([a, b, c, d1, d2, specials])
    assert not np.isnan(src).any()
    with np.errstate(over="ignore"):
        expected = src.astype(dtype)
    return src.tolist(), expected.astype(np.float64)


@functools.lru_cache(maxsize=None)
def bfloat16_sample():
    """float32 sources for bfloat16 (returned as float64 lists/arrays; exact widening).

    A random float32 bit patterns (all exponents, both signs, NaN dropped); B exact ties
    (low 16 bits 0x8000) above random bfloat16 patterns incl. subnormals and the overflow
    threshold 0x7f7f8000, and near-ties (low bits 0x7fff, 0x8001, ...); C float32 subnormals;
    D float32 magnitudes in [M, M + ulp(M)) of bfloat16, around its overflow threshold.
    """
    rng = np.random.default_rng(SEED)
    a = rng.integers(0, 1 << 32, 60_000, dtype=np.uint64).astype(np.uint32)
    a = a[(a & 0x7F800000) != 0x7F800000]
    hi = rng.integers(0, 1 << 16, 40_000, dtype=np.uint64).astype(np.uint32)
    hi = hi[(hi & 0x7F80) != 0x7F80]
    hi[:4] = [0x0000, 0x0001, 0x007F, 0x7F7F]
    low = rng.choice(
        np.array([0x8000] * 6 + [0x7FFF, 0x8001, 0x7FFE, 0x8002, 0x0001, 0xFFFF], np.uint32),
        hi.size,
    )
    low[:4] = 0x8000
    b = (hi << np.uint32(16)) | low
    c = rng.integers(0, 0x00800000, 10_000, dtype=np.uint64).astype(np.uint32)
    c |= rng.integers(0, 2, c.size, dtype=np.uint64).astype(np.uint32) << np.uint32(31)
    d = rng.integers(0x7F7F0000, 0x7F800000, 5_000, dtype=np.uint64).astype(np.uint32)
    d |= rng.integers(0, 2, d.size, dtype=np.uint64).astype(np.uint32) << np.uint32(31)
    specials = np.array([0x00000000, 0x80000000, 0x7F800000, 0xFF800000], np.uint32)
    f32 = np.concatenate([a, b, c, d, specials]).view(np.float32)
    return f32, f32.astype(np.float64).tolist()


def _bf16_bits_to_float64(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32).astype(np.float64)


def _random_float64(rng: random.Random, lo_field: int = 0, hi_field: int = 2046) -> float:
    """A positive finite double with a random significand and exponent field in range."""
    bits = (rng.randint(lo_field, hi_field) << 52) | rng.getrandbits(52)
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def _next64_exact(a: float) -> Fraction:
    nxt = math.nextafter(a, math.inf)
    return TWO**1024 if math.isinf(nxt) else Fraction(nxt)


@functools.lru_cache(maxsize=None)
def float64_sample(n: int = 100_000, bits: int = 80, seed: int = SEED):
    """Exact dyadic Fraction sources n/2^k for float64 (more bits than a double holds).

    60%: random ``bits``-bit numerators across exponents 2^-1080 .. 2^1026 (below half the
    smallest subnormal up to past overflow); 25%: exact midpoints between adjacent doubles
    (subnormals and the overflow threshold included) and midpoints +- 2^-10 or 2^-(bits-55)
    of the gap; 15%: magnitudes in [M, M + ulp(M)) and below 3 S.  Random signs.  Every
    numerator has at most ``bits`` significant bits (exact in a 64-bit long double).
    """
    rng = random.Random(seed)
    S, _, M, ulp_M, _ = consts("float64")
    eps_shift = max(10, bits - 55)
    out = []
    for i in range(n):
        r = rng.random()
        if r < 0.60:
            num = rng.getrandbits(bits) | (1 << (bits - 1))
            e = rng.randint(-1080, 1026) - (bits - 1)
            q = Fraction(num << e) if e >= 0 else Fraction(num, 1 << -e)
        elif r < 0.85:
            a = _random_float64(rng, 0, 2046) if rng.random() < 0.8 else _random_float64(rng, 0, 1)
            if i % 997 == 0:
                a = float(M)  # the midpoint above M is the overflow threshold
            gap = _next64_exact(a) - Fraction(a)
            q = Fraction(a) + gap / 2 + rng.choice([0, 0, 0, 1, -1]) * gap / TWO**eps_shift
        elif r < 0.925:  # M has 53 bits: keep the numerator within ``bits`` bits
            q = M + ulp_M * Fraction(rng.getrandbits(bits - 56), 1 << (bits - 56))
        else:
            q = 3 * S * Fraction(rng.getrandbits(bits - 2), 1 << (bits - 2))
        out.append(-q if rng.random() < 0.5 else q)
    return out


def int_division(q: Fraction) -> float:
    """CPython's int true division is correctly rounded (ties to even, gradual underflow,
    OverflowError past the threshold); the sign of an underflowed result is kept."""
    try:
        return q.numerator / q.denominator
    except OverflowError:
        return -math.inf if q < 0 else math.inf


# --- 1. constants ------------------------------------------------------------------------------


def _finfo(name: str):
    if name == "bfloat16":
        md = pytest.importorskip("ml_dtypes")
        return md.finfo(md.bfloat16)
    return np.finfo(NUMPY_DTYPE[name])


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_constants_match_finfo(fmt):
    fi = _finfo(fmt.name)
    p, emin, emax = fi.nmant + 1, fi.minexp, fi.maxexp - 1
    assert (fmt.p, fmt.emin, fmt.emax) == (p, emin, emax), fmt.name
    assert PARAMS[fmt.name] == (p, emin, emax), "the test's own table disagrees with finfo"
    eps, S, N, M = (Fraction(float(v)) for v in (fi.eps, fi.smallest_subnormal, fi.tiny, fi.max))
    assert fmt.u == eps / 2, f"{fmt.name}: u={fmt.u}, finfo.eps/2={eps / 2}"
    assert fmt.eta == S / 2
    assert fmt.smallest_subnormal_exact == S
    assert same(fmt.smallest_subnormal, float(S)), (fmt.name, show(fmt.smallest_subnormal))
    assert same(fmt.smallest_normal, float(N)), (fmt.name, show(fmt.smallest_normal))
    assert Fraction(float(fi.smallest_normal)) == N
    assert same(fmt.largest_finite, float(M)), (fmt.name, show(fmt.largest_finite))
    assert fmt.largest_finite_exact == M
    assert TWO**fmt.quantum_exponent == S
    # ulp(M) = eps * 2^emax; the threshold lies half of it above M.
    assert fmt.overflow_threshold == M + eps * TWO**emax / 2
    # the constants are values of the format and consistent with ulp()
    assert fmt.ulp(fmt.largest_finite) == eps * TWO**emax
    assert fmt.ulp(0.0) == S
    for v in (fmt.smallest_subnormal, fmt.smallest_normal, fmt.largest_finite):
        assert fmt.contains(v) and fmt.check(v) == v


def test_format_registry():
    assert FORMATS == {f.name: f for f in ALL}
    assert get_format("float32") is FLOAT32 and get_format(FLOAT16) is FLOAT16
    with pytest.raises(ValueError, match="float16"):
        get_format("float8")


# --- 2. random bulk comparisons ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", [FLOAT16, FLOAT32], ids=lambda f: f.name)
def test_round_random_vs_numpy_cast(fmt):
    src, expected = narrow_sample(fmt.name)
    assert len(src) >= 100_000
    got = assert_matches(fmt, src, expected, f"numpy float64->{fmt.name} cast")
    # the same in the target's own bit patterns (exact: every result is a member)
    dt, uint = NUMPY_DTYPE[fmt.name], UINT[fmt.name]
    assert np.array_equal(got.astype(dt).view(uint), expected.astype(dt).view(uint))
    # sanity of the sample itself: it reaches subnormals, ties and overflow
    exp = np.abs(expected)
    assert np.isinf(exp).sum() > 1000
    assert ((exp > 0) & (exp < fmt.smallest_normal)).sum() > 1000
    assert (exp == 0).sum() > 100


def test_round_random_bfloat16_vs_torch():
    torch = pytest.importorskip("torch")
    f32, src = bfloat16_sample()
    bits = torch.from_numpy(f32.copy()).to(torch.bfloat16).view(torch.int16).numpy()
    bits = bits.view(np.uint16)
    assert len(src) >= 100_000
    got = assert_matches(BFLOAT16, src, _bf16_bits_to_float64(bits), "torch float32->bfloat16 cast")
    # the same in bfloat16 bit patterns: every result is a float32 with 16 zero low bits
    got32 = got.astype(np.float32).view(np.uint32)
    assert not (got32 & np.uint32(0xFFFF)).any()
    assert np.array_equal((got32 >> np.uint32(16)).astype(np.uint16), bits)


def test_round_random_bfloat16_vs_ml_dtypes():
    md = pytest.importorskip("ml_dtypes")
    f32, src = bfloat16_sample()
    bits = f32.astype(md.bfloat16).view(np.uint16)
    assert len(src) >= 100_000
    assert_matches(BFLOAT16, src, _bf16_bits_to_float64(bits), "ml_dtypes float32->bfloat16 cast")


def test_round_random_float64_vs_int_division():
    src = float64_sample()
    assert len(src) >= 100_000
    assert_matches(FLOAT64, src, [int_division(q) for q in src], "CPython int true division")


def _dyadic_parts(q: Fraction) -> tuple[int, int]:
    """(m, e) with q = m * 2**e and m odd (or zero)."""
    n, d = q.numerator, q.denominator
    tz = (n & -n).bit_length() - 1 if n else 0
    return n >> tz, tz - (d.bit_length() - 1)


def test_round_random_float64_vs_longdouble():
    if np.finfo(np.longdouble).nmant < 63:
        pytest.skip("np.longdouble has no >= 64-bit significand here")
    # 64-bit numerators are exact in long double; long double -> double is one correct rounding
    src = float64_sample(30_000, 64, SEED + 1)
    parts = [_dyadic_parts(abs(q)) for q in src]
    assert max(m.bit_length() for m, _ in parts) <= 64
    hi = np.array([m >> 32 for m, _ in parts], dtype=np.longdouble)
    lo = np.array([m & 0xFFFFFFFF for m, _ in parts], dtype=np.longdouble)
    e = np.array([x for _, x in parts], dtype=np.int32)
    ld = np.ldexp(hi * np.longdouble(2**32) + lo, e)
    ld = np.where(np.array([q < 0 for q in src]), -ld, ld)
    with np.errstate(over="ignore", under="ignore"):
        expected = ld.astype(np.float64)
    assert_matches(FLOAT64, src, expected, "np.longdouble->float64 cast")
    # and the two float64 oracles agree with each other on this sample
    assert_matches(FLOAT64, src, expected, "np.longdouble->float64 cast", rounder=int_division,
                   subject="CPython int division")


def _ratio_sources(name: str, n: int, seed: int) -> list:
    """Unnormalised Ratio sources that take round_ratio's general (non-power-of-two) path.

    70%: random rationals with odd denominators of up to 70 bits, magnitudes across the
    target's whole exponent range (below half its smallest subnormal to past overflow);
    30%: exact midpoints between adjacent target values (a third subnormal; the top one is
    the overflow threshold) given as 3n/3d, and non-dyadic near-ties mid +- gap/(3 * 2^21)
    (2^12 for bfloat16).
    """
    p, emin, emax = PARAMS[name]
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if rng.random() < 0.7:
            num = rng.getrandbits(rng.randint(1, 90)) | 1
            den = rng.getrandbits(rng.randint(2, 70)) | 1
            den = 3 if den == 1 else den
            s = rng.randint(emin - p - 2, emax + 2) - (num.bit_length() - den.bit_length())
            num, den = (num << s, den) if s >= 0 else (num, den << -s)
        else:
            if rng.random() < 0.33:  # subnormal lower neighbour
                m, e = rng.randrange(0, 1 << (p - 1)), emin
            else:
                m, e = rng.randrange(1 << (p - 1), 1 << p), rng.randint(emin, emax)
            if rng.random() < 0.01:
                m, e = (1 << p) - 1, emax
            # mid = (2m + 1) * 2^(e - p);  near-tie offset = 2^(e - p - t) / 3, with t small
            # enough for bfloat16 that the float32 step of its oracle still resolves it
            k, t = rng.choice([0, 0, 0, 1, -1]), 12 if name == "bfloat16" else 21
            num, shift = (3 * (2 * m + 1), 0) if k == 0 else (3 * (2 * m + 1) * 2**t + k, t)
            ex = e - p - shift
            num, den = (num << ex, 3) if ex >= 0 else (num, 3 << -ex)
        out.append(Ratio(-num if rng.random() < 0.5 else num, den))
    return out


def _midpoints(r: np.ndarray, dt) -> np.ndarray:
    """True where the float64 values r lie exactly halfway between adjacent dt values
    (the overflow threshold, halfway between max and 2^(emax+1), included)."""
    top = 2.0 ** np.finfo(dt).maxexp
    with np.errstate(over="ignore"):
        rt = r.astype(dt)
        other = np.nextafter(rt, np.where(r > rt.astype(np.float64), dt(np.inf), dt(-np.inf)))
    a, b = rt.astype(np.float64), other.astype(np.float64)
    a = np.where(np.isinf(a), np.copysign(top, a), a)
    b = np.where(np.isinf(b), np.copysign(top, b), b)
    return (a != r) & ((a + b) / 2 == r)


@functools.lru_cache(maxsize=None)
def rational_sample(name: str, n: int = 12_000):
    """Ratio sources and expected roundings with the ambiguous ones dropped.

    The float64 oracle is CPython's correctly rounded n/d.  For a narrower target, casting
    that double r is correct unless r landed exactly on one of the target's midpoints
    (midpoints are doubles, so no midpoint separates x from r otherwise); those few are
    dropped unless x itself is the midpoint.  bfloat16 goes r -> float32 (numpy) ->
    bfloat16 (ml_dtypes), guarding both steps the same way.
    """
    src = _ratio_sources(name, n, SEED + 8 + len(name))
    r = np.array([int_division(Fraction(x.num, x.den)) for x in src])
    keep = np.ones(len(src), bool)
    if name == "float64":
        return src, r
    if name == "bfloat16":
        if ml_dtypes is None:
            pytest.skip("no bfloat16 oracle")
        amb32 = _midpoints(r, np.float32)
        with np.errstate(over="ignore"):
            r32 = r.astype(np.float32)
        amb = amb32 | ((r32.view(np.uint32) & np.uint32(0xFFFF)) == 0x8000)
        expected = _bf16_bits_to_float64(r32.astype(ml_dtypes.bfloat16).view(np.uint16))
        inexact32 = r32.astype(np.float64) != r
    else:
        dt = NUMPY_DTYPE[name]
        amb, inexact32 = _midpoints(r, dt), np.zeros(len(src), bool)
        with np.errstate(over="ignore"):
            expected = r.astype(dt).astype(np.float64)
    for i in np.flatnonzero(amb):  # keep exact midpoints, drop double-rounding ambiguities
        keep[i] = not inexact32[i] and Fraction(src[i].num, src[i].den) == Fraction(float(r[i]))
    assert keep.mean() > 0.9
    return [x for x, k in zip(src, keep) if k], expected[keep]


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_round_ratio_general_path(fmt):
    src, expected = rational_sample(fmt.name)
    got = assert_matches(fmt, src, expected, "CPython int division (+ numpy/ml_dtypes casts)")
    # the exact ties survived the guards, and Fraction inputs agree with round_ratio
    assert sum(1 for x in src if x.num % 3 == 0 and x.den % 3 == 0) > 1000
    for x, g in zip(src[::20], got[::20]):
        assert same(fmt.round(Fraction(x.num, x.den)), float(g)), (fmt.name, show(x))


# --- 3. edge classes -------------------------------------------------------------------------

EPS_SHIFT = {"float16": 20, "bfloat16": 12, "float32": 20, "float64": 20}


def edge_cases(name: str):
    """(class id, exact positive source, expected positive result) stated from PARAMS."""
    S, N, M, ulp_M, U1 = consts(name)
    k = TWO ** -EPS_SHIFT[name]  # "tiny" relative to the local gap; float32-exact for bf16
    T = M + ulp_M / 2  # overflow threshold
    inf = math.inf
    return [
        ("tie-even-below", 1 + U1 / 2, 1),
        ("tie-odd-below", 1 + 3 * U1 / 2, 1 + 2 * U1),
        ("tie-even-below-plus-eps", 1 + U1 / 2 + U1 * k, 1 + U1),
        ("tie-even-below-minus-eps", 1 + U1 / 2 - U1 * k, 1),
        ("tie-odd-below-plus-eps", 1 + 3 * U1 / 2 + U1 * k, 1 + 2 * U1),
        ("tie-odd-below-minus-eps", 1 + 3 * U1 / 2 - U1 * k, 1 + U1),
        ("tie-carry-into-next-binade", 2 - U1 / 2, 2),
        ("tie-top-binade-even-below", M - ulp_M / 2, M - ulp_M),
        ("subnormal-tie-odd-below", 3 * S / 2, 2 * S),
        ("subnormal-tie-even-below", 5 * S / 2, 2 * S),
        ("subnormal-tie-even-below-plus-eps", 5 * S / 2 + S * k, 3 * S),
        ("subnormal-tie-odd-below-minus-eps", 3 * S / 2 - S * k, S),
        ("smallest-subnormal", S, S),
        ("half-smallest-subnormal", S / 2, 0),
        ("just-above-half-smallest-subnormal", S / 2 + S * k, S),
        ("just-below-half-smallest-subnormal", S / 2 - S * k, 0),
        ("quarter-smallest-subnormal", S / 4, 0),
        ("largest-subnormal", N - S, N - S),
        ("smallest-normal", N, N),
        ("halfway-largest-subnormal-smallest-normal", N - S / 2, N),
        ("just-below-halfway-subnormal-normal", N - S / 2 - S * k, N - S),
        ("largest-finite", M, M),
        ("overflow-threshold", T, inf),
        ("just-below-overflow-threshold", T - ulp_M * k, M),
        ("just-above-overflow-threshold", T + ulp_M * k, inf),
        ("twice-top-binade", TWO ** (PARAMS[name][2] + 1), inf),
        ("far-overflow", TWO ** (PARAMS[name][2] + 100), inf),
    ]


EDGE_PARAMS = [
    pytest.param(fmt, cls, sgn * q, (math.copysign(float(r), sgn) if r != math.inf else sgn * r),
                 id=f"{fmt.name}-{cls}-{'neg' if sgn < 0 else 'pos'}")
    for fmt in ALL
    for cls, q, r in edge_cases(fmt.name)
    for sgn in (1, -1)
]


def _as_float64(q: Fraction):
    try:
        f = float(q)
    except OverflowError:
        return None
    return f if Fraction(f) == q else None


def _oracles(fmt: Format, q: Fraction):
    """(name, value) pairs from independent implementations that can take source q."""
    out = []
    f = _as_float64(q)
    if fmt.name in ("float16", "float32") and f is not None:
        with np.errstate(over="ignore"):
            out.append(("numpy cast", float(np.float64(f).astype(NUMPY_DTYPE[fmt.name]))))
    if fmt.name == "bfloat16" and f is not None and ml_dtypes is not None:
        with np.errstate(over="ignore"):
            f32 = np.float32(f)
        if not np.isinf(f32) and Fraction(float(f32)) == q:
            out.append(("ml_dtypes cast", float(np.array([f32]).astype(ml_dtypes.bfloat16)[0])))
    if fmt.name == "float64":
        out.append(("int division", int_division(q)))
    return out


@pytest.mark.parametrize("fmt, cls, q, expected", EDGE_PARAMS)
def test_round_edge_cases(fmt, cls, q, expected):
    got = fmt.round(q)
    msg = f"{fmt.name} {cls}: input {show(q)}"
    assert same(got, expected), f"{msg}: expected {show(expected)}, got {show(got)}"
    f = _as_float64(q)
    if f is not None:  # the float input path agrees with the Fraction path
        got_f = fmt.round(f)
        assert same(got_f, expected), (
            f"{msg} (as float): expected {show(expected)}, got {show(got_f)}"
        )
    for oracle, value in _oracles(fmt, q):
        assert same(value, expected), (
            f"{msg}: {oracle} gives {show(value)}, expected {show(expected)}"
        )
    # round_ratio is the same rounding, on the power-of-two and on the general division path
    for k in (1, 3):
        got_r = fmt.round_ratio(k * q.numerator, k * q.denominator)
        assert same(got_r, expected), (
            f"{msg} (round_ratio, both terms times {k}): "
            f"expected {show(expected)}, got {show(got_r)}"
        )


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_signed_zero(fmt):
    S = consts(fmt.name)[0]
    cases = [
        ("float -0.0 stays -0.0", -0.0, -0.0),
        ("float +0.0 stays +0.0", 0.0, 0.0),
        ("exact Fraction(0) gives +0.0", Fraction(0), 0.0),
        ("int 0 gives +0.0", 0, 0.0),
        ("tiny negative Fraction gives -0.0", -S / 4, -0.0),
        ("tiny positive Fraction gives +0.0", S / 4, 0.0),
        ("negative half smallest subnormal gives -0.0", -S / 2, -0.0),
    ]
    for what, src, expected in cases:
        got = fmt.round(src)
        assert same(got, expected), (
            f"{fmt.name} {what}: input {show(src)}, expected {show(expected)}, got {show(got)}"
        )
    assert same(fmt.round_ratio(0, 7), 0.0)
    assert same(fmt.round_ratio(-1, 2**2000), -0.0)
    if fmt.name in ("float16", "float32"):  # numpy agrees on the float inputs
        for x in (-0.0, float(-S / 4)):
            assert same(float(np.float64(x).astype(NUMPY_DTYPE[fmt.name])), -0.0)
            assert same(fmt.round(x), -0.0), (fmt.name, show(x))


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_negative_mirrors_positive(fmt):
    # over a random slice of the bulk sample: round(-x) == -round(x), bit for bit
    if fmt.name == "float64":
        src = float64_sample()[::50]
    elif fmt.name == "bfloat16":
        src = bfloat16_sample()[1][::50]
    else:
        src = narrow_sample(fmt.name)[0][::50]
    for x in src:
        a, b = fmt.round(x), fmt.round(-x)
        assert same(b, -a), f"{fmt.name}: round({show(x)}) = {show(a)} but round(-x) = {show(b)}"


def test_other_exact_input_types():
    # int and mpmath.mpf inputs take the same rounding as Fractions; bool/str/Decimal are refused
    mpmath = pytest.importorskip("mpmath")
    src = float64_sample()[::50]
    with mpmath.workprec(256):  # exact for the <= 120-bit significands of the sample
        mp = [(-1 if q < 0 else 1) * mpmath.ldexp(mpmath.mpf(m), e)
              for q in src for m, e in [_dyadic_parts(abs(q))]]
    assert_matches(FLOAT64, mp, [int_division(q) for q in src], "int division (mpf inputs)")
    assert same(FLOAT32.round(mpmath.mpf(2) ** -150), 0.0)
    assert same(FLOAT16.round(2**16), math.inf) and same(FLOAT16.round(2049), 2048.0)
    assert same(FLOAT16.round(-2051), -2052.0) and same(FLOAT64.round(2**53 + 1), 2.0**53)
    for bad in (True, "0.1", Decimal("0.1")):
        with pytest.raises(TypeError):
            FLOAT32.round(bad)
    with pytest.raises(ValueError):
        FLOAT32.round(mpmath.inf)


def test_infinity_and_nan_inputs_pass_through():
    for fmt in ALL:
        assert same(fmt.round(math.inf), math.inf) and same(fmt.round(-math.inf), -math.inf)
        assert math.isnan(fmt.round(math.nan))


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_contains_and_check(fmt):
    # membership of a binary64 value == "the oracle's cast leaves it unchanged"
    if fmt.name == "float64":
        src = narrow_sample("float32")[0][::4]
        expected = np.ones(len(src), bool)
    elif fmt.name == "bfloat16":
        if ml_dtypes is None:
            pytest.skip("no bfloat16 oracle")
        f32, src = bfloat16_sample()
        expected = f32.astype(ml_dtypes.bfloat16).astype(np.float32) == f32
    else:
        src, rounded = narrow_sample(fmt.name)
        expected = rounded == np.array(src)
    got = np.array([fmt.contains(v) for v in src])
    bad = np.flatnonzero(got != expected)
    assert not bad.size, (
        f"{fmt.name}.contains wrong for {len(bad)} values, e.g. {show(src[bad[0]])}: "
        f"got {got[bad[0]]}, oracle says {expected[bad[0]]}"
    )
    S, N, M, ulp_M, U1 = consts(fmt.name)
    p, emin, emax = PARAMS[fmt.name]
    outside = [math.nan]
    if fmt.p < 53:  # binary64 holds every float64 value; the others have non-members
        outside += [float(v) for v in (2 * M, -2 * M, 1 + U1 / 2, S / 2, -S / 2, M + ulp_M / 2)]
    for v in outside:
        assert not fmt.contains(v), f"{fmt.name}.contains({show(v)}) is True"
        with pytest.raises(ValueError, match=fmt.name):
            fmt.check(v)
    for v in (0.0, -0.0, float(S), float(N - S), float(-M), 1.0):
        assert fmt.contains(v) and same(fmt.check(v), v), (fmt.name, show(v))
    assert fmt.contains(math.inf) and fmt.contains(-math.inf)
    with pytest.raises(ValueError):
        fmt.check(math.inf)
    with pytest.raises(TypeError):
        fmt.check(1)


# --- 4. ulp, next_up, next_down --------------------------------------------------------------


def _bit_step(name: str, v: float, up: bool) -> float:
    """nextUp/nextDown by integer steps on the format's own bit pattern (bfloat16 oracle)."""
    assert name == "bfloat16"
    f32 = np.array([v], np.float32)
    b = int((f32.view(np.uint32) >> np.uint32(16))[0])
    if not up:
        return -_bit_step(name, -v, True)
    if b == 0x7F80:  # +inf
        return v
    if b & 0x7FFF == 0:  # +-0
        b = 0x0001
    elif b & 0x8000:
        b -= 1
    else:
        b += 1
    return float(_bf16_bits_to_float64(np.array([b], np.uint16))[0])


def _np_step(name: str, v: float, up: bool) -> float:
    if name == "bfloat16":
        return _bit_step(name, v, up)
    dt = NUMPY_DTYPE[name]
    with np.errstate(over="ignore"):
        return float(np.nextafter(dt(v), dt(math.inf if up else -math.inf)))


def _members(fmt: Format, n: int, seed: int):
    """n random finite members of fmt (random bit patterns) plus edge members."""
    S, N, M, _, U1 = (float(x) for x in consts(fmt.name))
    rng = np.random.default_rng(seed)
    if fmt.name == "float64":
        r = random.Random(seed)
        vals = [_random_float64(r) * r.choice([-1, 1]) for _ in range(n)]
    elif fmt.name == "bfloat16":
        bits = rng.integers(0, 1 << 16, n).astype(np.uint16)
        bits = bits[(bits & 0x7F80) != 0x7F80]
        vals = _bf16_bits_to_float64(bits).tolist()
    else:
        uint, dt = UINT[fmt.name], NUMPY_DTYPE[fmt.name]
        x = rng.integers(0, 1 << (8 * np.dtype(uint).itemsize), n, dtype=np.uint64).astype(uint)
        x = x.view(dt)
        vals = x[np.isfinite(x)].astype(np.float64).tolist()
    edges = [0.0, S, 2 * S, N - S, N, 2 * N, 1.0, 1.0 - U1 / 2, 1.0 + U1, 2.0, M, M / 2]
    return vals + edges + [-v for v in edges]


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_next_up_down_vs_nextafter(fmt):
    oracle = "bit stepping" if fmt.name == "bfloat16" else "np.nextafter"
    for v in _members(fmt, 1500, SEED + 2):
        for up, fn in ((True, fmt.next_up), (False, fmt.next_down)):
            got, exp = fn(v), _np_step(fmt.name, v, up)
            assert same(got, exp), (
                f"{fmt.name}: {fn.__name__}({show(v)}) = {show(got)}, {oracle} gives {show(exp)}"
            )


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_ulp_is_gap_above(fmt):
    M = fmt.largest_finite
    for v in _members(fmt, 1500, SEED + 3):
        a = abs(v)
        if a == M:
            continue
        gap = Fraction(_np_step(fmt.name, a, True)) - Fraction(a)
        assert fmt.ulp(v) == gap, f"{fmt.name}: ulp({show(v)}) = {fmt.ulp(v)}, gap above is {gap}"


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_ulp_and_steps_at_edges(fmt):
    p, emin, emax = PARAMS[fmt.name]
    S, N, M, ulp_M, U1 = consts(fmt.name)
    fS, fN, fM = float(S), float(N), float(M)
    # ulp: constant S through the subnormals and the first normal binade, then doubling
    assert fmt.ulp(0) == S and fmt.ulp(S) == S and fmt.ulp(N - S) == S and fmt.ulp(N) == S
    assert fmt.ulp(2 * N) == 2 * S and fmt.ulp(2 * N - S) == S
    assert fmt.ulp(1) == U1 and fmt.ulp(1 - U1 / 2) == U1 / 2 and fmt.ulp(-1) == U1
    assert fmt.ulp(Fraction(3, 2)) == U1 and fmt.ulp(Fraction(1, 3)) == U1 / 4
    assert fmt.ulp(M) == ulp_M and fmt.ulp(TWO**emax) == ulp_M
    assert fmt.ulp(TWO**emax - TWO ** (emax - p)) == ulp_M / 2
    # steps at the ends and around zero
    assert same(fmt.next_up(fM), math.inf)
    assert same(fmt.next_down(-fM), -math.inf)
    assert same(fmt.next_up(-fS), -0.0), f"{fmt.name}: next_up(-S) = {fmt.next_up(-fS)!r}"
    assert same(fmt.next_down(fS), 0.0)
    assert same(fmt.next_down(0.0), -fS) and same(fmt.next_down(-0.0), -fS)
    assert same(fmt.next_up(0.0), fS) and same(fmt.next_up(-0.0), fS)
    assert same(fmt.next_up(math.inf), math.inf) and same(fmt.next_up(-math.inf), -fM)
    assert same(fmt.next_down(math.inf), fM) and same(fmt.next_down(-math.inf), -math.inf)
    assert same(fmt.next_up(float(N - S)), fN) and same(fmt.next_down(fN), float(N - S))
    assert same(fmt.next_up(-fN), float(-(N - S)))
    assert same(fmt.next_up(1.0), float(1 + U1)) and same(fmt.next_down(1.0), float(1 - U1 / 2))
    assert same(fmt.next_up(-1.0), float(-(1 - U1 / 2)))
    # non-members are rejected rather than silently rounded (every binary64 value is a float64)
    if fmt.p < 53:
        with pytest.raises(ValueError):
            fmt.next_up(float(1 + U1 / 2))


# --- 5. hex and parsing -----------------------------------------------------------------------


def _libc_hex():
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("float_hex is specified as glibc's %a")
    path = ctypes.util.find_library("c")
    if not path:
        pytest.skip("libc not found")
    libc = ctypes.CDLL(path)

    def fmt_a(x: float) -> str:
        buf = ctypes.create_string_buffer(64)
        libc.snprintf(buf, ctypes.c_size_t(64), b"%a", ctypes.c_double(x))
        return buf.value.decode()

    return fmt_a


def _hex_sample(n: int = 2000):
    r = random.Random(SEED + 4)
    vals = [struct.unpack("<d", struct.pack("<Q", r.getrandbits(64)))[0] for _ in range(n // 2)]
    vals += [_random_float64(r, 0, 0) * r.choice([-1, 1]) for _ in range(n // 4)]  # subnormals
    vals += [_random_float64(r, 0, 2046) * r.choice([-1, 1]) for _ in range(n // 4)]
    vals += [0.0, -0.0, math.inf, -math.inf, 5e-324, -5e-324, 1.0, 0.1, 2.0**-1022, 1.5]
    vals += [float(f.largest_finite) for f in ALL] + [f.smallest_subnormal for f in ALL]
    return [v for v in vals if not math.isnan(v)]


def test_float_hex_matches_glibc_printf():
    printf_a = _libc_hex()
    for v in _hex_sample():
        assert float_hex(v) == printf_a(v), (
            f"float64 value {show(v)}: float_hex gives {float_hex(v)!r}, printf %a {printf_a(v)!r}"
        )


def test_hex_roundtrip_and_examples():
    for v in _hex_sample():
        h = float_hex(v)
        if math.isfinite(v):
            assert parse_hex(h) == Fraction(v), (h, show(v))
        assert same(float.fromhex(h), v), (h, show(v))
        assert same(FLOAT64.parse(h), v), (h, show(v))
    assert float_hex(0.1) == "0x1.999999999999ap-4"
    assert float_hex(-0.0) == "-0x0p+0" and float_hex(0.0) == "0x0p+0"
    assert float_hex(5e-324) == "0x0.0000000000001p-1022"
    assert float_hex(1.0) == "0x1p+0" and float_hex(-1.5) == "-0x1.8p+0"
    specials = (float_hex(math.inf), float_hex(-math.inf), float_hex(math.nan))
    assert specials == ("inf", "-inf", "nan")
    assert FLOAT16.hex(65504.0) == "0x1.ffcp+15" and FLOAT32.hex(2.0**-149) == "0x1p-149"
    for fmt in ALL:  # every member prints and parses back to itself
        for v in _members(fmt, 200, SEED + 5):
            assert same(fmt.parse(fmt.hex(v)), v), (fmt.name, show(v), fmt.hex(v))


@pytest.mark.parametrize("text", ["0.1", "-0.1", "3.14159", "1e-5", "-2.5e-3", "65504", "6e-8",
                                  "1e-45", "3.4028235e38", "1"])
@pytest.mark.parametrize("fmt", [FLOAT16, FLOAT32], ids=lambda f: f.name)
def test_parse_decimal_vs_numpy(fmt, text):
    with np.errstate(over="ignore"):
        exp = NUMPY_DTYPE[fmt.name](text)
    got = fmt.parse(text)
    exp_bits = int(np.array([exp]).view(UINT[fmt.name])[0])
    got_bits = int(np.array([got]).astype(NUMPY_DTYPE[fmt.name]).view(UINT[fmt.name])[0])
    assert exp_bits == got_bits and same(got, float(exp)), (
        f"{fmt.name}.parse({text!r}) = {show(got)}, numpy gives {show(float(exp))}"
    )


def test_parse_decimal_random():
    # float64: CPython's float(str) is correctly rounded; narrower formats: float(str) then a
    # numpy cast, which is exact unless float(str) lands exactly on a tie of the target format.
    r = random.Random(SEED + 6)
    texts = ["-0", "0", "1e-400", "-1e-400", "1e400", "-1e400", "0.0e0"]
    for _ in range(1500):
        digits = "".join(r.choice("0123456789") for _ in range(r.randint(1, 25)))
        point = r.randint(0, len(digits))
        sign, exp10 = r.choice(["", "-", "+"]), r.randint(-340, 310)
        texts.append(f"{sign}{digits[:point]}.{digits[point:]}e{exp10}")
    for text in texts:
        d = float(text)
        got = FLOAT64.parse(text)
        assert same(got, d), f"float64.parse({text!r}) = {show(got)}, float() gives {show(d)}"
        for fmt in (FLOAT16, FLOAT32):
            dt = NUMPY_DTYPE[fmt.name]
            with np.errstate(over="ignore"):
                n = dt(d)
            if math.isfinite(d) and math.isfinite(float(n)) and Fraction(text) != Fraction(d):
                with np.errstate(over="ignore"):
                    other = float(np.nextafter(n, dt(math.copysign(math.inf, d - float(n)))))
                if math.isfinite(other) and 2 * Fraction(d) == Fraction(float(n)) + Fraction(other):
                    continue  # double-rounding ambiguity; see test_parse_avoids_double_rounding
            got = fmt.parse(text)
            assert same(got, float(n)), (
                f"{fmt.name}.parse({text!r}) = {show(got)}, numpy gives {show(float(n))}"
            )


@pytest.mark.parametrize("fmt", [FLOAT16, BFLOAT16, FLOAT32], ids=lambda f: f.name)
def test_parse_avoids_double_rounding(fmt):
    # a decimal a hair above the tie 1 + U1/2: float() rounds it onto the tie, so a
    # decimal->double->format conversion gives 1.0, but the correct result is 1 + U1.
    U1 = consts(fmt.name)[4]
    tie = Decimal(1 + U1.numerator / Decimal(U1.denominator) / 2)
    text = f"{tie}" + "0" * 30 + "1"
    assert Fraction(float(text)) == 1 + U1 / 2  # the trap is real
    got = fmt.parse(text)
    assert same(got, float(1 + U1)), (
        f"{fmt.name}.parse({text!r}) = {show(got)}, expected {show(1 + U1)}"
    )
    got = fmt.parse("-" + text)
    assert same(got, float(-(1 + U1))), f"{fmt.name}.parse('-{text}') = {show(got)}"


def test_parse_bfloat16_decimal():
    # 0.1 = 1.6 * 2^-4; 1.6 * 2^7 = 204.8 -> 205: bfloat16(0.1) = 205 * 2^-11
    assert same(BFLOAT16.parse("0.1"), 205 * 2.0**-11)
    assert same(BFLOAT16.parse("-0.1"), -205 * 2.0**-11)
    if ml_dtypes is not None:
        assert same(float(ml_dtypes.bfloat16(0.1)), BFLOAT16.parse("0.1"))


HEX_CASES = [  # (format, literal, expected) with expected stated from the definition
    (FLOAT16, "0x1.002p+0", 1.0),  # tie, even below
    (FLOAT16, "0x1.006p0", 1 + 2.0**-9),  # tie, odd below -> up
    (FLOAT16, "0x1.0021p0", 1 + 2.0**-10),  # above the tie
    (FLOAT16, "-0x1.002p0", -1.0),
    (FLOAT16, "0x1p-25", 0.0),  # half the smallest subnormal -> 0 (even)
    (FLOAT16, "0x1.0000001p-25", 2.0**-24),
    (FLOAT16, "-0x1p-26", -0.0),
    (FLOAT16, "0x1.ffcp15", 65504.0),
    (FLOAT16, "0x1.ffdfffp15", 65504.0),
    (FLOAT16, "0x1.ffep15", math.inf),  # 65520, the overflow threshold
    (FLOAT16, "0X1.FFEP+15", math.inf),
    (BFLOAT16, "0x1.01p0", 1.0),
    (BFLOAT16, "0x1.03p0", 1 + 2.0**-6),
    (BFLOAT16, "0x1.ffp127", math.inf),
    (BFLOAT16, "0x1.fefffp127", 2.0**127 * (2 - 2.0**-7)),
    (FLOAT32, "0x1.000001p0", 1.0),
    (FLOAT32, "0x1.000003p0", 1 + 2.0**-22),
    (FLOAT32, "0x1p-150", 0.0),
    (FLOAT32, "0x1.8p-150", 2.0**-149),
    (FLOAT32, "0x1.ffffffp127", math.inf),
    (FLOAT32, "-0x1.fffffep127", -(2.0**128 - 2.0**104)),
    (FLOAT64, "0x1.00000000000008p0", 1.0),
    (FLOAT64, "0x1.00000000000018p0", 1 + 2.0**-51),
    (FLOAT64, "0x1p-1075", 0.0),
    (FLOAT64, "0x1.00000000000001p-1075", 5e-324),
    (FLOAT64, "0x1.fffffffffffff8p1023", math.inf),
    (FLOAT64, "0x1.fffffffffffff7ffp1023", 1.7976931348623157e308),
    (FLOAT64, "-0x0p+0", -0.0),
    (FLOAT64, "0x.8p1", 1.0),
    (FLOAT64, "0x1.", 1.0),
]


@pytest.mark.parametrize("fmt, text, expected", HEX_CASES,
                         ids=[f"{f.name}-{t}" for f, t, _ in HEX_CASES])
def test_parse_hex_rounds(fmt, text, expected):
    got = fmt.parse(text)
    assert same(got, expected), (
        f"{fmt.name}.parse({text!r}) = {show(got)}, expected {show(expected)}"
    )


def test_parse_hex_random_float64_vs_fromhex():
    # CPython's float.fromhex is correctly rounded (ties to even, subnormals, OverflowError)
    r = random.Random(SEED + 7)
    for _ in range(1500):
        digits = "".join(r.choice("0123456789abcdef") for _ in range(r.randint(1, 20)))
        text = f"{r.choice(['', '-'])}0x{digits[:1]}.{digits[1:]}p{r.randint(-1100, 1030)}"
        try:
            exp = float.fromhex(text)
        except OverflowError:
            exp = -math.inf if text.startswith("-") else math.inf
        got = FLOAT64.parse(text)
        assert same(got, exp), (
            f"float64.parse({text!r}) = {show(got)}, float.fromhex gives {show(exp)}"
        )


def test_parse_specials():
    for fmt in ALL:
        assert same(fmt.parse("inf"), math.inf) and same(fmt.parse("-Infinity"), -math.inf)
        assert math.isnan(fmt.parse("nan"))
        assert same(fmt.parse("  -0x0p+0 "), -0.0) and same(fmt.parse("-0.0"), -0.0)
        assert same(fmt.parse("0"), 0.0) and same(fmt.parse("+0x1p0"), 1.0)
        with pytest.raises(TypeError):
            fmt.parse(0.1)


@pytest.mark.parametrize("text", ["abc", "0x", "1.2.3", "", "   ", "0x1.2.3", "0xg1", "1e",
                                  "0x1p", "--1", "1.2e3.4", "0x1p+-2", "0x.p1", "1,5", "+-0x1p0"])
@pytest.mark.parametrize("fmt", [FLOAT16, FLOAT64], ids=lambda f: f.name)
def test_parse_rejects_garbage(fmt, text):
    with pytest.raises(ValueError) as info:
        fmt.parse(text)
    msg = str(info.value)
    assert re.search(r"example", msg) and re.search(r"'(0\.1|-?0x1\.[0-9a-f]+p-?\d+)'", msg), msg


@pytest.mark.parametrize("text", ["+-inf", "--inf", "-+nan", "1/3", "1_000", ".", "", "e5"])
def test_parse_rejects_non_literals(text):
    """Only decimal/hex literals: no doubled signs, fractions, digit separators, bare dots."""
    with pytest.raises(ValueError):
        FLOAT32.parse(text)


def test_parse_huge_exponents_are_fast_and_correct():
    assert FLOAT32.parse("1e-99999999") == 0.0
    assert math.copysign(1, FLOAT32.parse("-1e-99999999")) == -1
    assert FLOAT16.parse("1e400000000") == math.inf


def test_next_up_down_of_nan_is_nan():
    assert math.isnan(FLOAT32.next_up(math.nan)) and math.isnan(FLOAT32.next_down(math.nan))


# --- 6. mutation self-check ------------------------------------------------------------------


def _mutant(kind: str, fmt: Format):
    """A deliberately wrong rounding built on fmt.round, to prove the comparisons can fail."""
    M = fmt.largest_finite

    def wrong(x):
        y = round_any(fmt, x)
        if isinstance(x, float) and not math.isfinite(x):
            return y
        q = Fraction(*x) if isinstance(x, Ratio) else Fraction(x)
        if kind == "flush_to_zero":
            return math.copysign(0.0, y) if 0 < abs(y) < fmt.smallest_normal else y
        if kind == "late_overflow":  # overflow only at M + ulp(M) instead of M + ulp(M)/2
            if math.isinf(y) and abs(q) < Fraction(M) + fmt.ulp(M):
                return math.copysign(M, y)
            return y
        if kind == "toward_zero":
            if math.isinf(y):
                return math.copysign(M, y)
            if abs(Fraction(y)) > abs(q):
                return fmt.next_down(y) if y > 0 else fmt.next_up(y)
            return y
        a = abs(Fraction(y)) if math.isfinite(y) else None
        if a is None:
            return y
        if kind == "ties_away" and abs(q) > a and abs(y) != M:
            up = fmt.next_up(abs(y))
            if 2 * (abs(q) - a) == Fraction(up) - a:
                return math.copysign(up, y)
        if kind == "ties_toward_zero" and abs(q) < a:
            down = fmt.next_down(abs(y))
            if 2 * (a - abs(q)) == a - Fraction(down):
                return math.copysign(down, y)
        return y

    return wrong


MUTANTS = ["toward_zero", "ties_away", "ties_toward_zero", "flush_to_zero", "late_overflow"]


def _sample_for(fmt: Format, stride: int, kind: str = "bulk"):
    if kind == "ratio":
        src, exp = rational_sample(fmt.name)
        return src[::stride], exp[::stride], "int division (+ casts)"
    if fmt.name == "float64":
        src = float64_sample()[::stride]
        return src, [int_division(q) for q in src], "int division"
    if fmt.name == "bfloat16":
        if ml_dtypes is None:
            pytest.skip("no bfloat16 oracle")
        f32, src = bfloat16_sample()
        exp = _bf16_bits_to_float64(f32.astype(ml_dtypes.bfloat16).view(np.uint16))
        return src[::stride], exp[::stride], "ml_dtypes cast"
    src, exp = narrow_sample(fmt.name)
    return src[::stride], exp[::stride], "numpy cast"


@pytest.mark.parametrize("kind", MUTANTS)
@pytest.mark.parametrize("sample", ["bulk", "ratio"])
@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_mutants_are_caught_by_bulk_comparison(fmt, sample, kind):
    src, exp, oracle = _sample_for(fmt, 40 if sample == "bulk" else 8, sample)
    assert not mismatches(fmt, src, exp), "the unmutated rounding must pass on this slice"
    bad = mismatches(fmt, src, exp, rounder=_mutant(kind, fmt))
    assert bad, (
        f"{fmt.name}: mutant {kind} passed the comparison with {oracle} on {len(src)} values"
    )


@pytest.mark.parametrize("kind", MUTANTS)
def test_mutants_are_caught_by_edge_table(kind):
    for fmt in ALL:
        caught = [
            cls for cls, q, r in edge_cases(fmt.name)
            if not same(_mutant(kind, fmt)(q), float(r) if r != math.inf else r)
        ]
        assert caught, f"{fmt.name}: mutant {kind} passes every edge case"
