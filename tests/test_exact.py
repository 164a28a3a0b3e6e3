"""The exact reference is exact: it equals a fractions.Fraction computation on random binary
inputs across each format's whole exponent range, and satisfies identities that hold exactly."""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest

from reference.exact import QUANTITIES, exact_loss, exact_step, to_mpf
from reference.formats import FLOAT32, FLOAT64, FORMATS, to_fraction
from neuronspec.cases.sampling import random_values

CASES = 4000  # per format; each case costs ~0.1 ms


def fraction_step(w, b, x, t, lr) -> dict[str, Fraction]:
    """An independent exact step in fractions.Fraction."""
    w, b, x, t, lr = (Fraction(v) for v in (w, b, x, t, lr))
    y = w * x + b
    r = y - t
    return {"y": y, "dL_dy": r, "loss": r * r / 2, "dL_dw": r * x, "dL_db": r,
            "w_new": w - lr * r * x, "b_new": b - lr * r}


def sample(fmt, seed: int, n: int = CASES, lr_format=None):
    rng = np.random.default_rng(seed)
    cols = [random_values(fmt, rng, n) for _ in range(4)]
    cols.append(random_values(lr_format or fmt, rng, n))
    return [tuple(float(c[i]) for c in cols) for i in range(n)]


def mismatches(step, cases):
    """Cases where ``step`` disagrees with the Fraction reference (quantity, inputs)."""
    bad = []
    for case in cases:
        want = fraction_step(*case)
        got = step(*case)
        for q in QUANTITIES:
            if to_fraction(got[q]) != want[q]:
                bad.append((q, case))
    return bad


@pytest.mark.parametrize("fmt", FORMATS.values(), ids=FORMATS.keys())
def test_exact_step_equals_fractions(fmt):
    cases = sample(fmt, seed=1000 + fmt.p)
    bad = mismatches(exact_step, cases)
    assert not bad, f"{fmt.name}: exact_step differs from Fraction on {len(bad)} quantities, " \
                    f"first {bad[0][0]} at (w, b, x, t, lr) = {[v.hex() for v in bad[0][1]]}"


def test_exact_step_with_binary64_lr_and_narrow_parameters():
    cases = sample(FORMATS["float16"], seed=7, lr_format=FLOAT64)
    assert not mismatches(exact_step, cases)


def test_exact_step_ignores_mpmath_working_precision():
    """Exactness must not depend on mp.prec (a user may lower it globally)."""
    cases = sample(FLOAT64, seed=11, n=200)
    with mpmath.workprec(10):
        bad = mismatches(exact_step, cases)
    assert not bad


def test_a_53_bit_reference_would_be_rejected():
    """The check above can fail: mpmath at its default 53 bits is not exact on these inputs."""

    def step_53(w, b, x, t, lr):
        with mpmath.workprec(53):
            w, b, x, t, lr = (mpmath.mpf(v) for v in (w, b, x, t, lr))
            y = w * x + b
            r = y - t
            return {"y": y, "dL_dy": r, "loss": r * r / 2, "dL_dw": r * x, "dL_db": r,
                    "w_new": w - lr * r * x, "b_new": b - lr * r}

    for fmt in (FLOAT32, FLOAT64):
        bad = mismatches(step_53, sample(fmt, seed=3, n=300))
        assert len(bad) > 100, f"{fmt.name}: a 53-bit reference disagreed only {len(bad)} times"


# --- identities that hold exactly for this model ---------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS.values(), ids=FORMATS.keys())
def test_exact_identities(fmt):
    rng = np.random.default_rng(2000 + fmt.p)
    hs = random_values(fmt, rng, 400, special=0.0)
    for (w, b, x, t, lr), h in zip(sample(fmt, seed=3000 + fmt.p, n=400), hs):
        s = exact_step(w, b, x, t, lr)
        q = s.as_fractions()
        W, B, X, T, LR, H = (Fraction(v) for v in (w, b, x, t, lr, h))
        where = f"{fmt.name} (w, b, x, t, lr) = {(w, b, x, t, lr)}"
        assert q["dL_dw"] == X * q["dL_db"], f"dL/dw != x * dL/db at {where}"
        assert q["dL_dy"] == q["dL_db"], where
        assert q["loss"] >= 0, f"loss < 0 at {where}"
        assert q["loss"] == q["dL_dy"] ** 2 / 2, where
        if H != 0:
            # L is quadratic in w and in b, so the central difference is exact for any h != 0
            dw = (to_fraction(exact_loss(W + H, B, X, T)) - to_fraction(exact_loss(W - H, B, X, T)))
            assert dw / (2 * H) == q["dL_dw"], f"central difference in w, h={h!r}, at {where}"
            db = (to_fraction(exact_loss(W, B + H, X, T)) - to_fraction(exact_loss(W, B - H, X, T)))
            assert db / (2 * H) == q["dL_db"], f"central difference in b, h={h!r}, at {where}"
        # residual after the update: r' = r * (1 - lr*(x^2 + 1))
        r_new = q["w_new"] * X + q["b_new"] - T
        assert r_new == q["dL_dy"] * (1 - LR * (X * X + 1)), f"residual after update at {where}"


def test_identities_can_fail():
    """A step with the gradient sign flipped violates the residual identity: the check bites."""
    w, b, x, t, lr = 0.5, -0.1, 2.0, 1.0, 0.1
    q = exact_step(w, b, x, t, lr).as_fractions()
    W, B, X, T, LR = (Fraction(v) for v in (w, b, x, t, lr))
    wrong_w = W + LR * q["dL_dw"]  # + instead of -
    wrong_b = B + LR * q["dL_db"]
    assert wrong_w * X + wrong_b - T != q["dL_dy"] * (1 - LR * (X * X + 1))


# --- the seed example, exactly ----------------------------------------------------------------


def test_seed_float32_exact_values():
    """The float32 seed inputs: b = fl32(-0.1) and the exact results they imply."""
    b = FLOAT32.parse("-0.1")
    assert b == -0.100000001490116119384765625
    s = exact_step(0.5, b, 2.0, 1.0, FLOAT32.parse("0.1")).as_fractions()
    assert s["y"] == Fraction("0.899999998509883880615234375")
    assert s["dL_db"] == Fraction("-0.100000001490116119384765625")
    assert s["dL_dw"] == Fraction("-0.20000000298023223876953125")


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, error, words",
    [
        ("0.1", TypeError, "FLOAT32.parse"),
        (Fraction(1, 10), ValueError, "power of two"),
        (float("inf"), ValueError, "not finite"),
        (float("nan"), ValueError, "not finite"),
        (True, TypeError, "bool"),
        ([1.0], TypeError, "unsupported type"),
    ],
    ids=["decimal-string", "non-dyadic-fraction", "inf", "nan", "bool", "list"],
)
def test_non_binary_inputs_are_refused_with_a_fix(value, error, words):
    with pytest.raises(error, match=words):
        exact_step(value, 1.0, 1.0, 1.0, 1.0)


def test_dyadic_fraction_and_mpf_inputs_are_accepted():
    assert to_mpf(Fraction(3, 8)) == mpmath.mpf(0.375)
    assert exact_step(Fraction(1, 2), 0, 2, 1, mpmath.mpf(0.25)).w_new == mpmath.mpf(0.5)
