"""numpy's PCG64 stream in compiled code (numba): the draws of ``regimes.BlockSampler`` without
numpy's per-call overhead or temporary arrays, bit for bit the values numpy gives.

A :class:`Stream` takes a ``numpy.random.Generator``'s PCG64 state (the 128-bit LCG, and the
32-bit half of a 64-bit output that ``next_uint32`` keeps for its next call), draws in compiled
loops with numpy's own algorithms -- ``random_raw``, ``random`` (53 bits of an output),
``uniform``, ``integers`` (Lemire's method on 32-bit draws, rejection included, for ranges below
2**32) and ``choice`` (an ``integers`` draw of an index) -- and hands the state back
(:meth:`Stream.close`), so that the generator goes on where numpy would have.  The regimes'
rounding to the format and nudging by whole quanta run here too, with numpy's arithmetic.
Seeded sweeps therefore draw the same cases with it as without it: ``tests/test_stream.py``
compares each draw, the rounding, every regime and whole chunks with numpy's.  Each LCG step
waits for the one before (1.3 ns a draw here); four lanes of states four steps apart run side
by side instead where a call draws a known number of values (:func:`_fill`, 0.76 ns a draw).
Imported only when numba is installed.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .compiled import assemble_values, bits_of_float, float_of_bits, pow2

__all__ = ["Stream", "supported"]

_MASK64 = (1 << 64) - 1
#: PCG64's multiplier (numpy's ``PCG_DEFAULT_MULTIPLIER_128``), in 64-bit halves.
_MULT = 0x2360ED051FC65DA44385DF649FCCF645
_M_HI, _M_LO = np.uint64(_MULT >> 64), np.uint64(_MULT & _MASK64)


def supported(rng: np.random.Generator) -> bool:
    """Whether ``rng`` is a generator this module reproduces (PCG64, numpy's default)."""
    return type(rng.bit_generator).__name__ == "PCG64"


@intrinsic
def _mulhi(typingctx, a, b):
    """The high 64 bits of the 128-bit product of two uint64 (one instruction on x86-64)."""
    def codegen(context, builder, signature, args):
        wide = ir.IntType(128)
        product = builder.mul(builder.zext(args[0], wide), builder.zext(args[1], wide))
        return builder.trunc(builder.lshr(product, ir.Constant(wide, 64)), ir.IntType(64))
    return types.uint64(types.uint64, types.uint64), codegen


#: Lanes of :func:`_fill`: the states LANES draws apart follow each other by one affine map, so
#: LANES chains of LCG steps run side by side (the multiplier's throughput, not a step's
#: latency, bounds the draws then: 0.76 against 1.3 ns a draw).
LANES = 4


def jump_of(inc: int, k: int = LANES) -> np.ndarray:
    """The map s -> MULT**k * s + inc * (MULT**(k-1) + ... + 1) (mod 2**128) that k steps of the
    LCG with increment ``inc`` make, as uint64 halves [a_hi, a_lo, c_hi, c_lo]."""
    mod = 1 << 128
    a = pow(_MULT, k, mod)
    c = inc * sum(pow(_MULT, j, mod) for j in range(k)) % mod
    return np.array([a >> 64, a & _MASK64, c >> 64, c & _MASK64], dtype=np.uint64)


@njit(inline="always")
def _affine(hi, lo, a_hi, a_lo, c_hi, c_lo):
    """s * a + c (mod 2**128), in 64-bit halves."""
    cross = lo * a_hi + hi * a_lo
    new_lo = lo * a_lo + c_lo
    carry = np.uint64(1) if new_lo < c_lo else np.uint64(0)
    return _mulhi(lo, a_lo) + cross + c_hi + carry, new_lo


@njit(inline="always")
def _output(hi, lo):
    """PCG64's output of a state (XSL-RR)."""
    x = hi ^ lo
    rot = hi >> np.uint64(58)
    return (x >> rot) | (x << ((np.uint64(64) - rot) & np.uint64(63)))


@njit(inline="always")
def _step(hi, lo, inc_hi, inc_lo):
    """One PCG64 step: state * MULT + inc (mod 2**128); the new state and its output
    (XSL-RR: the halves xor-ed, rotated right by the top 6 bits)."""
    hi, lo = _affine(hi, lo, _M_HI, _M_LO, inc_hi, inc_lo)
    return hi, lo, _output(hi, lo)


@njit(nogil=True, cache=True)
def _fill(st, jump, out):
    """``bit_generator.random_raw(len(out))``: the first LANES draws step by step, then each
    lane jumps LANES steps at a time (``jump``: :func:`jump_of` this stream's increment); the
    rest step by step from the last lane.  The same draws, in the same order."""
    hi, lo, inc_hi, inc_lo = st[0], st[1], st[2], st[3]
    n = out.shape[0]
    i = 0
    if n >= 2 * LANES:
        h0, l0, out[0] = _step(hi, lo, inc_hi, inc_lo)
        h1, l1, out[1] = _step(h0, l0, inc_hi, inc_lo)
        h2, l2, out[2] = _step(h1, l1, inc_hi, inc_lo)
        h3, l3, out[3] = _step(h2, l2, inc_hi, inc_lo)
        a_hi, a_lo, c_hi, c_lo = jump[0], jump[1], jump[2], jump[3]
        i = LANES
        while i + LANES <= n:
            h0, l0 = _affine(h0, l0, a_hi, a_lo, c_hi, c_lo)
            h1, l1 = _affine(h1, l1, a_hi, a_lo, c_hi, c_lo)
            h2, l2 = _affine(h2, l2, a_hi, a_lo, c_hi, c_lo)
            h3, l3 = _affine(h3, l3, a_hi, a_lo, c_hi, c_lo)
            out[i] = _output(h0, l0)
            out[i + 1] = _output(h1, l1)
            out[i + 2] = _output(h2, l2)
            out[i + 3] = _output(h3, l3)
            i += LANES
        hi, lo = h3, l3
    while i < n:
        hi, lo, out[i] = _step(hi, lo, inc_hi, inc_lo)
        i += 1
    st[0], st[1] = hi, lo


@njit(nogil=True, cache=True)
def _doubles(st, jump, scale, offset, out):
    """``offset + scale * random(len(out))`` (``random``: scale 1, offset 0; ``uniform(lo,
    hi)``: scale hi - lo, offset lo, numpy's ``random_uniform``)."""
    raw = np.empty(out.shape[0], dtype=np.uint64)
    _fill(st, jump, raw)
    for i in range(out.shape[0]):
        u = np.float64(raw[i] >> np.uint64(11)) * (1.0 / 9007199254740992.0)
        out[i] = offset + scale * u


@njit(nogil=True, cache=True)
def _below(st, jump, p, out):
    """``random(len(out)) < p``."""
    raw = np.empty(out.shape[0], dtype=np.uint64)
    _fill(st, jump, raw)
    for i in range(out.shape[0]):
        out[i] = np.float64(raw[i] >> np.uint64(11)) * (1.0 / 9007199254740992.0) < p


@njit(nogil=True, cache=True)
def _integers(st, off, rng, out):
    """``integers(off, off + rng + 1, len(out))`` for 0 <= rng < 2**32 - 1: numpy's
    ``buffered_bounded_lemire_uint32`` on ``next_uint32`` (the low half of a 64-bit output,
    then its high half)."""
    if rng == 0:  # numpy draws nothing for a range of one value
        out[:] = off
        return
    hi, lo, inc_hi, inc_lo = st[0], st[1], st[2], st[3]
    has32, half = st[4], st[5]
    rng_excl = np.uint64(rng) + np.uint64(1)
    threshold = (np.uint64(0xFFFFFFFF) - np.uint64(rng)) % rng_excl
    for i in range(out.shape[0]):
        while True:
            if has32 != np.uint64(0):
                has32 = np.uint64(0)
                u = half
            else:
                hi, lo, r = _step(hi, lo, inc_hi, inc_lo)
                has32, half = np.uint64(1), r >> np.uint64(32)
                u = r & np.uint64(0xFFFFFFFF)
            m = u * rng_excl
            leftover = m & np.uint64(0xFFFFFFFF)
            # numpy computes the threshold only when leftover < rng_excl; it is below rng_excl
            if leftover >= threshold:
                break
        out[i] = off + np.int64(m >> np.uint64(32))
    st[0], st[1], st[4], st[5] = hi, lo, has32, half


@njit(nogil=True, cache=True, error_model="numpy")
def _values(st, jump, two, frac_bits, lo_binade, span, emin, threshold, specials, out):
    """``sampling.fast_values``: its raw draws (one per value; two, all of the first then all
    of the second, where ``two``) assembled by ``compiled.assemble_values``."""
    n = out.shape[0]
    raw = np.empty(2 * n if two else n, dtype=np.uint64)
    _fill(st, jump, raw)  # float64: numpy draws every first word, then every second one
    assemble_values(raw[:n], raw[n:] if two else raw, frac_bits, lo_binade, span, emin,
                    threshold, specials, out)


@njit(inline="always", error_model="numpy")
def _pow2floor(a):
    """``arith.ArrayOps.pow2floor``: the exponent field alone (inf stays inf)."""
    return float_of_bits(np.int64(bits_of_float(a) & np.uint64(0x7FF0000000000000)))


@njit(inline="always", error_model="numpy")
def _to_format(v, p, smallest_normal, largest):
    """v rounded to nearest-even in a format of precision p (binary64: v itself), as
    ``reference.batch.arith.round_to`` computes it in binary64 (gradual underflow, overflow to
    inf); binary32 by the hardware's conversion, as numpy's ``astype``."""
    if p >= 53:  # binary64 arithmetic has rounded already
        return v
    if p == 24:
        return np.float64(np.float32(v))
    quantum = np.maximum(_pow2floor(abs(v)), smallest_normal) * pow2(1 - p)
    big = quantum * 6755399441055744.0  # 1.5 * 2**52
    c = math.copysign((v + big) - big, v)
    c = c if abs(c) <= largest else math.copysign(math.inf, v)
    return c if np.isfinite(v) else v


@njit(nogil=True, cache=True, error_model="numpy")
def _round(values, p, smallest_normal, largest, out):
    for i in range(values.shape[0]):
        out[i] = _to_format(values[i], p, smallest_normal, largest)


@njit(nogil=True, cache=True, error_model="numpy")
def _nudge(st, values, ulps, p, smallest_normal, largest, out):
    """``BlockSampler.nudge``: each value moved by ``integers(-ulps, ulps + 1)`` of its quanta,
    rounded to the format, kept where that is not finite."""
    moves = np.empty(values.shape[0], dtype=np.int64)
    _integers(st, -ulps, 2 * ulps, moves)  # (numpy's ``integers(-ulps, ulps + 1)``)
    step = pow2(1 - p)
    for i in range(values.shape[0]):
        v = values[i]
        quantum = np.maximum(_pow2floor(abs(v)), smallest_normal) * step
        moved = _to_format(v + np.float64(moves[i]) * quantum, p, smallest_normal, largest)
        out[i] = moved if np.isfinite(moved) else v


class Stream:
    """A numpy Generator's PCG64 stream, drawn in compiled loops; :meth:`close` hands the
    state back to the generator."""

    def __init__(self, rng: np.random.Generator) -> None:
        if not supported(rng):
            raise ValueError(f"not a PCG64 generator: {type(rng.bit_generator).__name__}")
        self.rng = rng
        s = rng.bit_generator.state
        state, inc = s["state"]["state"], s["state"]["inc"]
        self.st = np.array([state >> 64, state & _MASK64, inc >> 64, inc & _MASK64,
                            s["has_uint32"], s["uinteger"]], dtype=np.uint64)
        self.jump = jump_of(inc)

    def close(self) -> None:
        """Hand the state back: the generator's next draw is the one after this stream's."""
        st = [int(v) for v in self.st]
        self.rng.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": (st[0] << 64) | st[1], "inc": (st[2] << 64) | st[3]},
            "has_uint32": st[4], "uinteger": st[5]}

    def raw(self, size: int) -> np.ndarray:
        out = np.empty(size, dtype=np.uint64)
        _fill(self.st, self.jump, out)
        return out

    def random(self, size: int) -> np.ndarray:
        out = np.empty(size)
        _doubles(self.st, self.jump, 1.0, 0.0, out)
        return out

    def uniform(self, low: float, high: float, size: int) -> np.ndarray:
        out = np.empty(size)
        _doubles(self.st, self.jump, float(high - low), float(low), out)
        return out

    def below(self, p: float, size: int) -> np.ndarray:
        """``random(size) < p``."""
        out = np.empty(size, dtype=np.bool_)
        _below(self.st, self.jump, float(p), out)
        return out

    def integers(self, low: int, high: int, size: int) -> np.ndarray:
        """``integers(low, high, size)`` (int64) for 0 < high - low < 2**32; numpy itself for
        other ranges (the state handed over and back)."""
        out = np.empty(size, dtype=np.int64)
        span = int(high) - int(low) - 1
        if 0 <= span < 0xFFFFFFFF:
            _integers(self.st, int(low), span, out)
            return out
        self.close()
        out[:] = self.rng.integers(low, high, size)
        self.__init__(self.rng)
        return out

    def choice(self, options: np.ndarray, size: int) -> np.ndarray:
        """``choice(options, size)``: numpy draws the indices with ``integers``."""
        return options[self.integers(0, len(options), size)]

    def values(self, two: bool, frac_bits: int, lo: int, span: int, emin: int,
               threshold: int, specials: np.ndarray, size: int) -> np.ndarray:
        """``sampling.fast_values``'s values (its arguments resolved)."""
        out = np.empty(size)
        _values(self.st, self.jump, two, frac_bits, lo, span, emin, threshold, specials, out)
        return out

    def round(self, values: np.ndarray, p: int, smallest_normal: float, largest: float
              ) -> np.ndarray:
        """``values`` rounded to the format of precision ``p`` (no draw)."""
        values = np.ascontiguousarray(values, dtype=np.float64)
        out = np.empty_like(values)
        _round(values, p, smallest_normal, largest, out)
        return out

    def nudge(self, values: np.ndarray, ulps: int, p: int, smallest_normal: float,
              largest: float) -> np.ndarray:
        """``BlockSampler.nudge`` for a format of precision ``p``."""
        values = np.ascontiguousarray(values, dtype=np.float64)
        out = np.empty_like(values)
        _nudge(self.st, values, ulps, p, smallest_normal, largest, out)
        return out
