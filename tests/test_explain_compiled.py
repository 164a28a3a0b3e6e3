"""The compiled exact level (``reference/batch/explain_kernel.py``) gives ``legal.explain_batch``'s
answer, value for value: on every regime, for values each admitted evaluation gives (every
variant of the models below), for values none gives (neighbours, NaN, infinities, zeros of
both signs), with dL_dy equal to dL_db or not; and its fallbacks (evaluations only numpy runs,
learning rates that are not values of the format) hand the cases to numpy."""

from __future__ import annotations

import numpy as np
import pytest

from neuronspec.cases.chunks import chunk_cases
from neuronspec.cases.regimes import REGIMES, regime_cases
from reference.batch import ROWS, explain_kernel
from reference.batch.legal import evaluate_arrays, explain_batch
from reference.formats import get_format
from reference.model import get_model
from reference.rounded import admitted
from reference.step import INPUTS, NODE_OF, REQUIRED

pytestmark = pytest.mark.skipif(explain_kernel.kernels("float32", "strict") is None,
                                reason="numba not installed")

#: (format, model): every variant of each narrow format's default model, flush-to-zero, the
#: strict model, and float32 work in binary64 (whose kept work only numpy runs: a fallback).
#: float32's default model runs by default; the others compile kernels of their own (10 to 25 s
#: each with a cold cache, as CI has): behind the ``slow`` marker.
CASES = [("float32", "ieee"),
         pytest.param("float16", "ieee", marks=pytest.mark.slow),
         pytest.param("bfloat16", "ieee", marks=pytest.mark.slow),
         pytest.param("bfloat16", "strict", marks=pytest.mark.slow),
         pytest.param("float32", "ieee+ftz", marks=pytest.mark.slow),
         pytest.param("float32", "ieee+wide", marks=pytest.mark.slow)]


def _cases(fmt, seed: int) -> dict[str, np.ndarray]:
    """A sweep's chunk (every campaign regime, one lr per block) and every regime, lr per case."""
    cols, _ = chunk_cases(fmt, seed, 0, 6000)
    rng = np.random.default_rng(seed)
    more = [c for regime in REGIMES for c in regime_cases(fmt, regime, rng, 60)]
    return {k: np.concatenate([cols[k], [c[i] for c in more]]) for i, k in enumerate(INPUTS)}


def _outputs(fmt, model, cols, rng) -> np.ndarray:
    """Rows ``ROWS``: per value, what a random admitted evaluation gives, or (one in five) a
    value none may give."""
    variants = admitted(fmt, model)
    n = len(cols["w"])
    with np.errstate(all="ignore"):
        every = np.stack([np.stack([evaluate_arrays(fmt, v, cols)[0][q] for q in ROWS])
                          for v in variants])
    pick = rng.integers(0, len(variants), size=(len(ROWS), n))
    block = np.take_along_axis(every, pick[None], axis=0)[0]
    dt = {"float16": np.float16, "float32": np.float32}.get(fmt.name)
    odd = rng.random(block.shape) < 0.2
    kind = rng.integers(0, 6, size=block.shape)
    with np.errstate(all="ignore"):
        if dt is not None:
            up = np.nextafter(block.astype(dt), dt(np.inf)).astype(np.float64)
        else:  # bfloat16: one quantum up (not a value of the format where it is finer)
            up = block * (1 + 2.0 ** -7)
        special = np.choose(kind % 5, [up, np.full_like(block, np.nan), -block,
                                       np.copysign(np.inf, -block), np.copysign(0.0, -block)])
    block = np.where(odd, special, block)
    twin = rng.random(n) < 0.5  # dL_dy: dL_db's bits in half the cases
    block[ROWS.index("dL_dy")] = np.where(twin, block[ROWS.index("dL_db")],
                                          block[ROWS.index("dL_dy")])
    return block


@pytest.mark.parametrize("name, model", CASES)
def test_compiled_exact_level_equals_explain_batch(name, model, monkeypatch):
    fmt, model = get_format(name), get_model(model)
    rng = np.random.default_rng(7)
    cols = _cases(fmt, 3)
    block = _outputs(fmt, model, cols, rng)
    handed = []

    def numpy_path(fmt, cols, names, block, model):
        handed.append(block.shape[1])
        return explain_batch(fmt, cols, names, block, model)

    monkeypatch.setattr(explain_kernel, "explain_batch", numpy_path)
    for names in (REQUIRED, ROWS):
        rows = block[[ROWS.index(q) for q in names]]
        want = explain_batch(fmt, cols, names, rows, model)
        got = explain_kernel.explain_compiled(fmt, cols, names, rows, model, "compiled")
        assert [v.name for v in got.variants] == [v.name for v in want.variants]
        for j, q in enumerate(names):
            bad = np.flatnonzero(got.which[j] != want.which[j])
            assert len(bad) == 0, (name, model.name, q, bad[:5], got.which[j][bad[:5]],
                                   want.which[j][bad[:5]])
        assert np.array_equal(got.others, np.flatnonzero((want.which != 0).any(axis=0)))
    explained = want.which[want.which >= 0]
    assert (want.which < 0).mean() > 0.1  # values no evaluation gives are part of the test
    # several evaluations are the first to give some value (others coincide with earlier ones
    # on every value their quantity takes) and many values are not the first evaluation's
    assert len(np.unique(explained)) >= 5 and (explained > 0).sum() > 1000
    numpy_alone = [v.work == "wide-kept" for v in want.variants] if name == "float32" \
        else [False] * len(want.variants)
    assert explain_kernel.compiled_variants(fmt, model) == [not a for a in numpy_alone]
    if any(numpy_alone):  # those cases, and only those, went to numpy
        assert handed and max(handed) < len(cols["w"])
    else:
        assert handed == []


def test_a_learning_rate_outside_the_format_goes_to_numpy(monkeypatch):
    """lr-binary64: a binary64 lr admits the lr-rounded evaluations, which numpy runs."""
    fmt, model = get_format("float32"), get_model("ieee+lr-binary64")
    cols = _cases(fmt, 4)
    cols["lr"] = cols["lr"] * (1 + 2.0 ** -40)
    block = np.stack([evaluate_arrays(fmt, admitted(fmt, model, lr_in_format=False)[5], cols)
                      [0][q] for q in REQUIRED])
    want = explain_batch(fmt, cols, REQUIRED, block, model)
    got = explain_kernel.explain_compiled(fmt, cols, REQUIRED, block, model, "compiled")
    assert "lr-rounded" in " ".join(v.name for v in got.variants)
    assert np.array_equal(got.which, want.which) and (got.which >= 0).all()


def test_the_kernel_is_traced_from_evaluate_step():
    """Its source is the traced evaluation: one function per node of a quantity, and a
    numpy-only evaluation (float32 kept in binary64) hands the case over (-2)."""
    text = explain_kernel.source("float32", "ieee+wide")
    for node in set(NODE_OF.values()):
        assert f"def explain_{node}(" in text
    assert "-2, k)" in text and "-2, k)" not in explain_kernel.source("float32", "ieee")
    with pytest.raises(ValueError):
        explain_kernel.source("float64", "ieee")


def test_mismatched_arrays_are_refused():
    fmt = get_format("float32")
    cols = _cases(fmt, 5)
    block = np.zeros((len(REQUIRED), 10))
    with pytest.raises(ValueError, match="expected"):
        explain_kernel.explain_compiled(fmt, cols, REQUIRED, block, "ieee", "compiled")
