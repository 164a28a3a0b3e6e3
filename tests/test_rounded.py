"""The canonical rounded evaluation agrees bit for bit with numpy's IEEE arithmetic, the fused
variants with the C library's fma, and the variants are distinct, named data."""

from __future__ import annotations

import ctypes
import ctypes.util
import math

import numpy as np
import pytest

from reference.exact import QUANTITIES
from reference.formats import FLOAT16, FLOAT32, FLOAT64, FORMATS
from reference.rounded import CANONICAL, VARIANTS, evaluate, fl_add, fl_fma, fl_mul
from neuronspec.cases.sampling import bits_of, random_values

N = 20_000
NUMPY_DTYPES = {"float16": np.float16, "float32": np.float32, "float64": np.float64}


def numpy_step(dt, w, b, x, t, lr):
    """The canonical order of operations in numpy arrays of dtype ``dt``."""
    with np.errstate(all="ignore"):
        w, b, x, t, lr = (np.asarray(v).astype(dt) for v in (w, b, x, t, lr))
        y = w * x + b
        r = y - t
        loss = dt(0.5) * (r * r)
        gw = r * x
        return {"y": y, "dL_dy": r, "loss": loss, "dL_dw": gw, "dL_db": r,
                "w_new": w - lr * gw, "b_new": b - lr * r}


def inputs(fmt, seed, n=N, lr_fmt=None):
    """Random inputs with a share of near-cancellations (t close to w*x + b)."""
    rng = np.random.default_rng(seed)
    w, b, x, t = (random_values(fmt, rng, n) for _ in range(4))
    lr = random_values(lr_fmt or fmt, rng, n)
    # a third of the cases: t = fl(w*x + b) nudged by a few ulps, so r is tiny and exact
    dt = NUMPY_DTYPES.get(fmt.name, np.float32)
    with np.errstate(all="ignore"):
        near = (w.astype(dt) * x.astype(dt) + b.astype(dt)).astype(np.float64)
    pick = (rng.random(n) < 1 / 3) & np.isfinite(near)
    with np.errstate(all="ignore"):
        near *= 1 + rng.integers(-4, 5, n) * 2.0 ** -fmt.p
    nudged = np.array([fmt.round(v) for v in near])
    pick &= np.isfinite(nudged)
    t[pick] = nudged[pick]
    return w, b, x, t, lr


def compare(fmt, variant, expected, cols):
    """(quantity, case index, expected, got) for every bitwise disagreement."""
    bad = []
    want_bits = {q: bits_of(np.asarray(expected[q], dtype=np.float64)) for q in QUANTITIES}
    for i in range(len(cols[0])):
        got = evaluate(fmt, *(float(c[i]) for c in cols), variant=variant)
        for q in QUANTITIES:
            if bits_of(np.float64(got[q])) != want_bits[q][i]:
                bad.append((q, i, float(expected[q][i]), got[q]))
    return bad


def describe(fmt, bad, cols):
    q, i, want, got = bad[0]
    case = ", ".join(f"{n}={float(c[i]).hex()}" for n, c in zip("w b x t lr".split(), cols))
    return f"{len(bad)} disagreements in {fmt.name}; first: {q} at {case}: want {want!r}, got {got!r}"


@pytest.mark.parametrize("name", ["float16", "float32", "float64"])
def test_canonical_matches_numpy_bitwise(name):
    fmt = FORMATS[name]
    cols = inputs(fmt, seed=fmt.p)
    bad = compare(fmt, CANONICAL, numpy_step(NUMPY_DTYPES[name], *cols), cols)
    assert not bad, describe(fmt, bad, cols)


@pytest.mark.parametrize("name", ["float16", "float32"])
def test_lr_rounded_matches_numpy_with_binary64_lr(name):
    """numpy converts a binary64 lr to the parameter dtype: the 'lr-rounded' variant."""
    fmt = FORMATS[name]
    cols = inputs(fmt, seed=100 + fmt.p, n=5000, lr_fmt=FLOAT64)
    bad = compare(fmt, VARIANTS["lr-rounded"], numpy_step(NUMPY_DTYPES[name], *cols), cols)
    assert not bad, describe(fmt, bad, cols)


def test_a_wrong_rounding_is_caught():
    """The comparison can fail: round-toward-zero in one product is detected on this sample."""
    fmt = FLOAT32
    cols = inputs(fmt, seed=5, n=2000)
    expected = numpy_step(np.float32, *cols)
    with np.errstate(all="ignore"):  # truncate p = w*x toward zero, in float64 then float32
        p64 = cols[0] * cols[2]  # w*x, exact in float64
        p32 = p64.astype(np.float32)
        too_big = np.abs(p32.astype(np.float64)) > np.abs(p64)
        p32[too_big] = np.nextafter(p32[too_big], np.float32(0))
        expected["y"] = p32 + cols[1].astype(np.float32)
    assert len(compare(fmt, CANONICAL, expected, cols)) > 100


# --- fused multiply-add against the C library ------------------------------------------------

_libm = ctypes.CDLL(ctypes.util.find_library("m"))
_libm.fma.argtypes = [ctypes.c_double] * 3
_libm.fma.restype = ctypes.c_double
_libm.fmaf.argtypes = [ctypes.c_float] * 3
_libm.fmaf.restype = ctypes.c_float
LIBM_FMA = {"float64": _libm.fma, "float32": _libm.fmaf}


@pytest.mark.parametrize("name", ["float32", "float64"])
def test_fl_fma_matches_libm(name):
    fmt = FORMATS[name]
    rng = np.random.default_rng(40 + fmt.p)
    a, b, c = (random_values(fmt, rng, N) for _ in range(3))
    # half the cases cancel: c = -fl(a*b) (+- an ulp), leaving the rounding error of a*b
    cancel = rng.random(N) < 0.5
    c[cancel] = [-fl_mul(fmt, float(x), float(y)) for x, y in zip(a[cancel], b[cancel])]
    fma = LIBM_FMA[name]
    for x, y, z in zip(a.tolist(), b.tolist(), c.tolist()):
        want, got = fma(x, y, z), fl_fma(fmt, x, y, z)
        same = (math.isnan(want) and math.isnan(got)) or (
            want == got and math.copysign(1, want) == math.copysign(1, got))
        assert same, f"{name} fma({x.hex()}, {y.hex()}, {z.hex()}): libm {want!r}, ours {got!r}"


@pytest.mark.parametrize("name", ["float32", "float64"])
@pytest.mark.parametrize("variant", ["fused-forward", "fused-update", "fused-forward+fused-update"])
def test_fused_variants_match_numpy_plus_libm(name, variant):
    fmt, dt, fma = FORMATS[name], NUMPY_DTYPES[name], LIBM_FMA[name]
    v = VARIANTS[variant]
    cols = inputs(fmt, seed=60 + fmt.p, n=3000)
    with np.errstate(all="ignore"):
        w, b, x, t, lr = (c.astype(dt) for c in cols)
        y = np.array([fma(*a) for a in zip(w.tolist(), x.tolist(), b.tolist())], dt) \
            if v.forward_fused else w * x + b
        r = y - t
        gw = r * x
        if v.update_fused:
            w_new = np.array([fma(*a) for a in zip((-lr).tolist(), gw.tolist(), w.tolist())], dt)
            b_new = np.array([fma(*a) for a in zip((-lr).tolist(), r.tolist(), b.tolist())], dt)
        else:
            w_new, b_new = w - lr * gw, b - lr * r
        expected = {"y": y, "dL_dy": r, "loss": dt(0.5) * (r * r), "dL_dw": gw, "dL_db": r,
                    "w_new": w_new, "b_new": b_new}
    bad = compare(fmt, v, expected, cols)
    assert not bad, describe(fmt, bad, cols)


# --- signed zeros and infinities ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS.values(), ids=FORMATS.keys())
def test_signed_zero_rules(fmt):
    def same(a, b):
        return a == b and math.copysign(1, a) == math.copysign(1, b)

    assert same(fl_mul(fmt, -0.0, 3.0), -0.0)
    assert same(fl_mul(fmt, -0.0, -3.0), 0.0)
    assert same(fl_add(fmt, -0.0, -0.0), -0.0)
    assert same(fl_add(fmt, -0.0, 0.0), 0.0)
    assert same(fl_add(fmt, 1.0, -1.0), 0.0)
    tiny = fmt.smallest_subnormal
    assert same(fl_mul(fmt, -tiny, 0.25), -0.0)  # underflow keeps the sign
    assert same(fl_fma(fmt, -0.0, 1.0, -0.0), -0.0)
    assert same(fl_fma(fmt, 2.0, 0.5, -1.0), 0.0)
    out = evaluate(fmt, -0.0, -0.0, 1.0, -0.0, 1.0)
    assert same(out["y"], -0.0) and same(out["dL_dy"], 0.0)


def test_overflow_results_follow_ieee():
    out = evaluate(FLOAT16, 300.0, 0.0, 300.0, 0.0, 1.0)
    assert out["y"] == math.inf and out["dL_dw"] == math.inf
    assert out["w_new"] == -math.inf and out["b_new"] == -math.inf


# --- the variants are data ---------------------------------------------------------------------


def test_variants_are_distinct_named_data():
    assert len(VARIANTS) == 8 and VARIANTS["canonical"] is CANONICAL
    keys = {(v.forward_fused, v.update_fused, v.lr_rounded) for v in VARIANTS.values()}
    assert len(keys) == 8
    fmt = FLOAT32
    cols = inputs(fmt, seed=9, n=400, lr_fmt=FLOAT64)
    for name, v in VARIANTS.items():
        if v is CANONICAL:
            continue
        differs = any(
            evaluate(fmt, *(float(c[i]) for c in cols), variant=v)
            != evaluate(fmt, *(float(c[i]) for c in cols), variant=CANONICAL)
            for i in range(len(cols[0]))
        )
        assert differs, f"variant {name} never differs from canonical: it is not observable"


def test_seed_numbers():
    """The seed notebook's printed numbers, float64 manual and torch float32."""
    f64 = evaluate(FLOAT64, 0.5, -0.1, 2.0, 1.0, 0.1)
    assert (f64["dL_dw"], f64["dL_db"]) == (-0.19999999999999996, -0.09999999999999998)
    assert (f64["w_new"], f64["b_new"]) == (0.52, -0.09000000000000001)
    f32 = evaluate(FLOAT32, 0.5, FLOAT32.parse("-0.1"), 2.0, 1.0, 0.1, variant="lr-rounded")
    assert (f32["dL_dw"], f32["dL_db"]) == (-0.20000004768371582, -0.10000002384185791)
    assert (f32["w_new"], f32["b_new"]) == (0.5199999809265137, -0.08999999612569809)


def test_inputs_outside_the_format_are_refused():
    with pytest.raises(ValueError, match="not a finite float32 value"):
        evaluate(FLOAT32, 0.1, 0.0, 1.0, 0.0, 0.1)
