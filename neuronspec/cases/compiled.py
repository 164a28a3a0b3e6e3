"""``sampling.fast_values``'s assembly of values from raw random bits as one compiled loop
(numba); imported only when numba is installed.  ``sampling.assemble`` is the numpy definition,
and ``tests/test_batch.py`` checks that both give the same bits."""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["assemble_values", "float_of_bits", "bits_of_float", "pow2"]


@intrinsic
def float_of_bits(typingctx, n):
    """The binary64 whose encoding is the int64 n (an LLVM bitcast)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))
    return types.float64(types.int64), codegen


@intrinsic
def bits_of_float(typingctx, x):
    """The encoding of the binary64 x as a uint64 (an LLVM bitcast)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.uint64))
    return types.uint64(types.float64), codegen


@njit(inline="always", error_model="numpy")
def pow2(e):
    """2**e for a normal exponent e."""
    return float_of_bits((e + 1023) << 52)


@njit(cache=True, nogil=True, error_model="numpy")
def assemble_values(raw, other, frac_bits, lo_binade, span, emin, threshold, specials, out):
    """``sampling.assemble`` as one loop (same bits, same values; ``raw``: the draws of the
    fractions, ``other``: those of the binades, signs and special values, the same array where
    one draw serves both), without a branch: it vectorises."""
    # the special values as scalars, picked by a tree of selects: an indexed read next to a
    # select keeps the loop from vectorising (1.4 against 0.3 ns a value)
    s0, s1, s2, s3 = specials[0], specials[1], specials[2], specials[3]
    s4, s5, s6, s7 = specials[4], specials[5], specials[6], specials[7]
    for i in range(out.shape[0]):
        o = other[i]
        r = raw[i]
        e = np.int64(((o >> np.uint64(16)) & np.uint64(0xFFFF)) * np.uint64(span)
                     >> np.uint64(16))
        e += lo_binade + 1023
        m = r >> np.uint64(64 - frac_bits) if frac_bits > 0 else np.uint64(0)
        negative = (o & np.uint64(1)) != 0
        # both candidates, then a select: the subnormal binade is a quarter of some regimes'
        # draws, a branch on it mispredicts.  m * 2**(emin - frac_bits), exactly: a normal
        # binary64 for the narrow formats; for float64, the subnormal whose encoding is m
        # (by its bits: arithmetic on subnormals is a hundred times slower)
        sub = float_of_bits(np.int64(m)) if frac_bits == 52 else \
            float(np.int64(m)) * pow2(emin - frac_bits)
        v = float_of_bits((np.int64(e) << 52) | np.int64(m << np.uint64(52 - frac_bits)))
        v = sub if e < emin + 1023 else v
        v = -v if negative else v
        choice = (o >> np.uint64(1)) & np.uint64(0x7FFF)
        b0 = (choice & np.uint64(1)) != 0
        b1 = (choice & np.uint64(2)) != 0
        low4 = (s3 if b0 else s2) if b1 else (s1 if b0 else s0)
        high4 = (s7 if b0 else s6) if b1 else (s5 if b0 else s4)
        special = high4 if (choice & np.uint64(4)) != 0 else low4  # specials[choice & 7]
        out[i] = special if choice < np.uint64(threshold) else v


