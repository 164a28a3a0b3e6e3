"""The batch verdict for float16, bfloat16 and float32 as one compiled loop (numba).

Operation for operation the arithmetic of ``batch.exact_nodes``, ``batch.batch_bounds`` and
``batch.check_batch`` in binary64 (same operands, same order, same roundings), fused into one
pass over the cases instead of ~300 array passes: ``tests/test_batch.py`` checks that both give
the same ratios bit for bit and the same decisions.  Imported only when numba is installed; the
numpy path is the fallback and the definition.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["verdict_kernel", "quick_kernel", "assemble_values", "OK", "BEYOND", "NEAR", "OUT_OF_DOMAIN", "NOT_FINITE", "NOT_IN_FORMAT"]

OK, BEYOND, NEAR, OUT_OF_DOMAIN, NOT_FINITE, NOT_IN_FORMAT = 0, 1, 2, 3, 4, 5

_U = 2.0**-53
_SPLIT = 134217729.0  # 2**27 + 1
_SLACK = 2.0**-40
_BAND = 2.0**-45
_BIG = 1.5 * 2.0**52
_INF = math.inf


@njit(inline="always", error_model="numpy")
def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@njit(inline="always", error_model="numpy")
def _two_prod(a, b):
    p = a * b
    c = _SPLIT * a
    ah = c - (c - a)
    al = a - ah
    c = _SPLIT * b
    bh = c - (c - b)
    bl = b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


@intrinsic
def _bits(typingctx, x):
    """The binary64 encoding of x as an int64 (an LLVM bitcast: no call, no memory)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))
    return types.int64(types.float64), codegen


@intrinsic
def _float(typingctx, n):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))
    return types.float64(types.int64), codegen


@njit(inline="always", error_model="numpy")
def _pow2floor(a):
    """Largest power of two <= a for a >= 0 normal or zero (as batch._pow2floor: the exponent
    field alone; inf stays inf)."""
    return _float(_bits(a) & 0x7FF0000000000000)


@njit(inline="always", error_model="numpy")
def _pow2(e):
    """2**e for a normal exponent e."""
    return _float((e + 1023) << 52)


@njit(inline="always", error_model="numpy")
def _round(v, p, emin, largest):
    if not math.isfinite(v):
        return v
    q = max(_pow2floor(abs(v)), _pow2(emin)) * _pow2(1 - p)
    big = q * _BIG
    c = (v + big) - big
    if not abs(c) <= largest:  # (as batch.round_to_format: also where big overflowed)
        return math.copysign(_INF, v)
    return c


@njit(inline="always", error_model="numpy")
def _add(h, l, v):
    s, e = _two_sum(h, v)
    z, ze = _two_sum(e, l)
    hi, lo = _two_sum(s, z)
    return hi, lo, abs(ze)


@njit(inline="always", error_model="numpy")
def _mul(h, l, v):
    p, pe = _two_prod(h, v)
    q = l * v
    z, ze = _two_sum(pe, q)
    hi, lo = _two_sum(p, z)
    return hi, lo, abs(ze) + (_U * 2) * abs(q)


@njit(inline="always", error_model="numpy")
def _half_ulp(fp, femin, m, grow):
    if not m > 0:
        return 0.0
    e = max(_pow2floor(m * grow), _pow2(femin))
    return e * _pow2(-fp)


@njit(inline="always", error_model="numpy")
def _term(kind, upper, lower, p, emin, wide, pow_square, grow, shrink):
    # kind: 0 mul, 1 add, 2 half, 3 sq
    tiny = _pow2(emin)
    tiny32 = _pow2(-126)
    if wide:
        e32 = _half_ulp(24, -126, upper, grow)
        if kind == 1 and upper * grow < tiny32:
            e32 = 0.0
        elif kind == 2 and lower * shrink >= tiny32:
            e32 = 0.0
        e = e32 + _half_ulp(p, emin, upper + e32, grow)
    elif kind == 1:
        e = 0.0 if upper * grow < tiny else _half_ulp(p, emin, upper, grow)
    elif kind == 2:
        e = 0.0 if lower * shrink >= tiny else _pow2(emin - p)
    else:
        e = _half_ulp(p, emin, upper, grow)
    if kind == 3 and pow_square:
        e = 2 * e
    return e


@njit(error_model="numpy")
def _node(value, prop, kind, bad, p, emin, largest, wide, pow_square, grow, shrink):
    mag = abs(value)
    upper = mag + prop
    lower = max(mag - prop, 0.0)
    rounding = _term(kind, upper, lower, p, emin, wide, pow_square, grow, shrink)
    err = prop + rounding
    ood = bad or not ((upper + rounding) * grow <= largest)
    return err, ood


@njit(inline="always", error_model="numpy")
def _judge(c, hi, lo, delta, bound, ood, p, emin, largest):
    """(status, |c - hi - lo|) of one computed value against its exact value and bound."""
    if ood:
        return OUT_OF_DOMAIN, math.nan
    if not math.isfinite(c):
        return NOT_FINITE, _INF
    d1, d1e = _two_sum(c, -hi)
    z, ze = _two_sum(d1e, -lo)
    d, de = _two_sum(d1, z)
    err = abs(d)
    ref = (abs(ze) + abs(de) + delta) * (1 + 4 * _U)
    if _round(c, p, emin, largest) != c:
        return NOT_IN_FORMAT, err
    if (err - bound * (1 + _BAND)) - ref > 0:
        return BEYOND, err
    if (err - bound * (1 - _BAND)) + ref > 0:
        return NEAR, err
    return OK, err


@njit(inline="always", error_model="numpy")
def _case(i, w, b, x, t, lr, p, emin, largest, wide, pow_square):
    """Exact value (hi, lo, delta), bound and out-of-domain flag of the quantities y, loss,
    dL_dw, dL_db (= dL_dy), w_new, b_new of case i, as one flat tuple (kept in registers)."""
    grow = 1.0 + _SLACK
    shrink = 1.0 - _SLACK
    up = 1 + 8 * _U
    wi, bi, xi, ti, li = w[i], b[i], x[i], t[i], lr[i]
    # exact nodes (batch.exact_nodes, binary64 path)
    ph = wi * xi
    yh, yl, dy = _add(ph, 0.0, bi)
    rh, rl, e = _add(yh, yl, -ti)
    dr = dy + e
    r_mag = abs(rh) * (1 + 4 * _U)
    ps, pse = _two_prod(rh, rh)
    cc = 2 * rh * rl
    z, ze = _two_sum(pse, cc)
    sh, sl = _two_sum(ps, z)
    e = abs(ze) + (_U * 2) * abs(cc) + 2 * rl * rl
    dsq = 2 * r_mag * dr + dr * dr + e
    gh, gl, e = _mul(rh, rl, xi)
    dgw = abs(xi) * dr + e
    lh, ll, e = _mul(gh, gl, li)
    dlgw = abs(li) * dgw + e
    wh, wl, e = _add(-lh, -ll, wi)
    dw = dlgw + e
    bh_, bl_, e = _mul(rh, rl, li)
    dlgb = abs(li) * dr + e
    nh, nl, e = _add(-bh_, -bl_, bi)
    db = dlgb + e
    # bounds (batch.batch_bounds, binary64 path)
    c1 = _round(ph, p, emin, largest)
    over = not math.isfinite(c1)
    e_p = 0.0 if over else abs(c1 - ph)
    if wide:
        c32 = _round(ph, 24, -126, 3.4028234663852886e38)
        over = over or not math.isfinite(c32)
        e_p = max(e_p, 0.0 if over else abs(c32 - ph))
        c2 = _round(c32, p, emin, largest)
        over = over or not math.isfinite(c2)
        e_p = max(e_p, 0.0 if over else abs(c2 - ph))
    upper = abs(ph) + 0.0
    err_p = 0.0 + e_p
    ood_p = over or not ((upper + e_p) * grow <= largest)
    err_y, ood_y = _node(yh, err_p, 1, ood_p, p, emin, largest, wide, pow_square, grow, shrink)
    err_r, ood_r = _node(rh, err_y, 1, ood_y, p, emin, largest, wide, pow_square, grow, shrink)
    rm = abs(rh)
    err_sq, ood_sq = _node(sh, 2 * rm * err_r + err_r * err_r, 3, ood_r, p, emin, largest,
                           wide, pow_square, grow, shrink)
    err_l, ood_l = _node(sh / 2, err_sq / 2, 2, ood_sq, p, emin, largest, wide, pow_square,
                         grow, shrink)
    ood_g = ood_r or not (2 * (rm + err_r) * grow <= largest)
    err_gw, ood_gw = _node(gh, abs(xi) * err_r, 0, ood_g, p, emin, largest, wide,
                           pow_square, grow, shrink)
    err_lgw, ood_lgw = _node(lh, abs(li) * err_gw, 0, ood_gw, p, emin, largest, wide,
                             pow_square, grow, shrink)
    err_w, ood_w = _node(wh, err_lgw, 1, ood_lgw, p, emin, largest, wide, pow_square, grow,
                         shrink)
    err_lgb, ood_lgb = _node(bh_, abs(li) * err_r, 0, ood_g, p, emin, largest, wide,
                             pow_square, grow, shrink)
    err_b, ood_b = _node(nh, err_lgb, 1, ood_lgb, p, emin, largest, wide, pow_square, grow,
                         shrink)
    return (yh, yl, dy * up, err_y * grow, (1.0 if ood_y else 0.0),
            sh / 2, sl / 2, (dsq / 2) * up, err_l * grow, (1.0 if ood_l else 0.0),
            gh, gl, dgw * up, err_gw * grow, (1.0 if ood_gw else 0.0),
            rh, rl, dr * up, err_r * grow, (1.0 if ood_g else 0.0),
            wh, wl, dw * up, err_w * grow, (1.0 if ood_w else 0.0),
            nh, nl, db * up, err_b * grow, (1.0 if ood_b else 0.0))


@njit(inline="always", error_model="numpy")
def _ratio(s, err, bound):
    if s == OUT_OF_DOMAIN:
        return math.nan
    if s == NOT_FINITE:
        return _INF
    if bound > 0:
        return err / bound
    return 0.0 if err == 0 else _INF


@njit(cache=True, nogil=True, error_model="numpy")
def verdict_kernel(w, b, x, t, lr, outs, p, emin, largest, wide, pow_square, ratio, status):
    """Per case and quantity: ratio (error/bound; nan outside the domain) and status.
    outs: (k, n) rows y, loss, dL_dw, dL_db, w_new, b_new[, dL_dy]."""
    rows = outs.shape[0]
    for i in range(w.shape[0]):
        v = _case(i, w, b, x, t, lr, p, emin, largest, wide, pow_square)
        for k in range(rows):
            g = 5 * (k if k < 6 else 3)  # dL_dy is dL_db's node
            s, e = _judge(outs[k, i], v[g], v[g + 1], v[g + 2], v[g + 3], v[g + 4] != 0, p,
                          emin, largest)
            status[k, i] = s
            ratio[k, i] = _ratio(s, e, v[g + 3])


@njit(inline="always", error_model="numpy")
def _quick(c, hi, lo, delta, bound, ood, p, emin, largest):
    """(attention, ratio estimate) of one value without error-free transformations:
    |c - exact| <= |fl(c - hi)|(1 + 2u) + |lo| + delta, so a value whose estimate is below
    the bound (by the band) and that is in the format is within its bound; any other value
    needs attention (the full judgement).  The estimate is >= the ratio, by ~1e-16."""
    if ood:
        return 0, -1.0
    quick = (abs(c - hi) * (1 + 2 * _U) + abs(lo) + delta) * (1 + 4 * _U)
    ok = quick <= bound * (1 - _BAND) and _round(c, p, emin, largest) == c
    return (0 if ok else 1), (quick / bound if bound > 0 else 0.0)


@njit(cache=True, nogil=True, error_model="numpy")
def quick_kernel(w, b, x, t, lr, outs, p, emin, largest, wide, pow_square, estimate, attention):
    """Per case: estimate[k, i] (ratio upper estimate; -1 outside the domain) and a bit mask
    attention[i] of the quantities that need the full judgement (``verdict_kernel``).
    No data-dependent stores: the loop stays cheap (~70 ns a case on one core)."""
    rows = outs.shape[0]
    for i in range(w.shape[0]):
        (a0, a1, a2, a3, a4, b0, b1, b2, b3, b4, c0, c1, c2, c3, c4, d0, d1, d2, d3, d4,
         e0, e1, e2, e3, e4, f0, f1, f2, f3, f4) = _case(i, w, b, x, t, lr, p, emin, largest,
                                                         wide, pow_square)
        m0, estimate[0, i] = _quick(outs[0, i], a0, a1, a2, a3, a4 != 0, p, emin, largest)
        m1, estimate[1, i] = _quick(outs[1, i], b0, b1, b2, b3, b4 != 0, p, emin, largest)
        m2, estimate[2, i] = _quick(outs[2, i], c0, c1, c2, c3, c4 != 0, p, emin, largest)
        m3, estimate[3, i] = _quick(outs[3, i], d0, d1, d2, d3, d4 != 0, p, emin, largest)
        m4, estimate[4, i] = _quick(outs[4, i], e0, e1, e2, e3, e4 != 0, p, emin, largest)
        m5, estimate[5, i] = _quick(outs[5, i], f0, f1, f2, f3, f4 != 0, p, emin, largest)
        m6 = 0
        if rows > 6:
            m6, estimate[6, i] = _quick(outs[6, i], d0, d1, d2, d3, d4 != 0, p, emin, largest)
        attention[i] = m0 | (m1 << 1) | (m2 << 2) | (m3 << 3) | (m4 << 4) | (m5 << 5) | (m6 << 6)


@njit(cache=True, nogil=True, error_model="numpy")
def assemble_values(raw, other, frac_bits, lo, span, emin, threshold, specials, out):
    """``sampling._assemble`` as one loop (same bits, same values)."""
    for i in range(raw.shape[0]):
        r = raw[i]
        o = other[i]
        e = np.int64(((o >> np.uint64(16)) & np.uint64(0xFFFF)) * np.uint64(span) >> np.uint64(16))
        e += lo + 1023
        m = r >> np.uint64(64 - frac_bits) if frac_bits > 0 else np.uint64(0)
        negative = (o & np.uint64(1)) != 0
        if e < emin + 1023:
            v = (float(m) * _pow2(emin)) * _pow2(-frac_bits)  # exact; 2**(emin-52) is subnormal
            v = -v if negative else v
        else:
            bits = (np.int64(e) << 52) | np.int64(m << np.uint64(52 - frac_bits))
            v = _float(bits)
            v = -v if negative else v
        choice = (o >> np.uint64(1)) & np.uint64(0x7FFF)
        if choice < np.uint64(threshold):
            v = specials[np.int64(choice & np.uint64(7))]
        out[i] = v
