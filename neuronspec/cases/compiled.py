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
def assemble_values(raw, other, frac_bits, lo, span, emin, threshold, specials, out):
    """``sampling.assemble`` as one loop (same bits, same values)."""
    for i in range(raw.shape[0]):
        r = raw[i]
        o = other[i]
        e = np.int64(((o >> np.uint64(16)) & np.uint64(0xFFFF)) * np.uint64(span) >> np.uint64(16))
        e += lo + 1023
        m = r >> np.uint64(64 - frac_bits) if frac_bits > 0 else np.uint64(0)
        negative = (o & np.uint64(1)) != 0
        if e < emin + 1023:
            v = (float(m) * pow2(emin)) * pow2(-frac_bits)  # exact; 2**(emin-52) is subnormal
            v = -v if negative else v
        else:
            bits = (np.int64(e) << 52) | np.int64(m << np.uint64(52 - frac_bits))
            v = float_of_bits(bits)
            v = -v if negative else v
        choice = (o >> np.uint64(1)) & np.uint64(0x7FFF)
        if choice < np.uint64(threshold):
            v = specials[np.int64(choice & np.uint64(7))]
        out[i] = v
