"""The batch path (reference/batch/, cases.sampling.fast_values, cases.regimes.regime_arrays):
exact within its own error bound, verdicts equal to the scalar path's, the compiled kernel equal
to the numpy definition node for node, and able to fail."""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest

from reference import batch
from reference.batch import kernel
from reference.batch.chain import PairArithmetic
from reference.bounds import MODELS, OutOfDomain, case_bounds
from reference.exact import exact_step
from reference.formats import FORMATS, get_format
from reference.step import INPUTS, NODE_OF, REQUIRED

from neuronspec.cases import sampling
from neuronspec.cases.regimes import CAMPAIGN_REGIMES as REGIMES, LR_BLOCK, regime_arrays, \
    regime_cases
from neuronspec.runs import crosscheck

NARROW = ("float16", "bfloat16", "float32")


def _has_numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _fraction(v) -> Fraction:
    return Fraction(*v.as_integer_ratio())


def _scalar_cases(fmt, n, seed):
    rng = np.random.default_rng(seed)
    cases = []
    for regime in REGIMES:
        cases += regime_cases(fmt, regime, rng, n)
    cols = {k: np.array([c[i] for c in cases]) for i, k in enumerate(INPUTS)}
    return cases, cols


@pytest.mark.parametrize("name", FORMATS)
def test_exact_nodes_are_within_their_delta(name):
    """hi + lo is the exact value (Fraction) up to delta, and delta is tiny against the bound."""
    fmt = get_format(name)
    cases, cols = _scalar_cases(fmt, 40, 1)
    work = batch.work_for(fmt)
    args = [cols[k].astype(work.dtype) for k in INPUTS]
    nodes = batch.exact_pairs(work, dict(zip(INPUTS, args)))
    bounds = batch.batch_bounds(fmt, *args, nodes=nodes)
    worst = 0.0
    for i, case in enumerate(cases):
        exact = exact_step(*case).as_fractions()
        scalar = case_bounds(fmt, case)
        for q in REQUIRED:
            node = nodes[NODE_OF[q]]
            gap = abs(_fraction(node.hi[i]) + _fraction(node.lo[i]) - exact[q])
            assert gap <= _fraction(node.delta[i]), (name, q, case)
            assert isinstance(scalar[q], OutOfDomain) == bool(bounds[q][1][i]), (name, q, case)
            if not isinstance(scalar[q], OutOfDomain) and scalar[q] > 0:
                worst = max(worst, float(_fraction(node.delta[i]) / Fraction(scalar[q])))
                rel = abs(_fraction(bounds[q][0][i]) - Fraction(scalar[q])) / Fraction(scalar[q])
                assert rel < 2**-40, (name, q, case, float(rel))
    assert worst < 2**-60, f"the reference's own error reached {worst:.3g} of a bound"


@pytest.mark.parametrize("name", FORMATS)
def test_batch_verdict_equals_scalar_verdict(name):
    """Outputs placed around the bound (pass, fail and the boundary): both paths agree on every
    value, and the sample holds both verdicts (the check can fail)."""
    counts = crosscheck.crosscheck_chunk(name, seed=5, index=0, n=600)
    assert counts["disagreements"] == 0, counts["examples"]
    assert counts["ratio_mismatches"] == 0
    assert counts["violations"] > 0.2 * counts["checked"]
    assert counts["checked"] - counts["violations"] > 0.2 * counts["checked"]


@pytest.mark.skipif(not _has_numba(), reason="numba not installed")
@pytest.mark.parametrize("name", NARROW)
def test_compiled_loop_equals_numpy_definition(name):
    fmt = get_format(name)
    rng = np.random.default_rng(11)
    cases, cols = _scalar_cases(fmt, 400, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outputs = crosscheck.outputs_around_bounds(fmt, cols, rng)
    outputs["dL_dy"] = outputs["dL_db"].copy()
    a = batch.check_batch(fmt, cols, outputs, engine="numpy")
    b = batch.check_batch(fmt, cols, outputs, engine="compiled")
    for q in a.ratio:
        assert np.array_equal(a.ratio[q], b.ratio[q], equal_nan=True), q
        for field in ("violation", "out_of_domain", "not_finite", "not_in_format"):
            assert np.array_equal(getattr(a, field)[q], getattr(b, field)[q]), (q, field)


@pytest.mark.skipif(not _has_numba(), reason="numba not installed")
@pytest.mark.parametrize("name, model", [
    *((name, "ieee") for name in NARROW), ("float32", "strict"),
    # the strict model's kernels of the narrower formats: about 1 s of compilation each with a
    # cold cache, as CI has; float32's strict kernel stays in the default run
    *(pytest.param(name, "strict", marks=pytest.mark.slow) for name in NARROW[:2])])
def test_compiled_kernel_equals_numpy_node_for_node(name, model):
    """The kernel is generated from the numpy path's own code: every node's pair, error bound and
    overflow flag, and every quantity's bound and interval, are the same bits in both."""
    fmt, model = get_format(name), MODELS[model]
    cases, cols = _scalar_cases(fmt, 60, 8)
    with np.errstate(all="ignore"):
        table = kernel.node_table(PairArithmetic(), fmt, model, dict(cols))
    out = np.full((len(table), len(cases)), -7.0)
    kernel.kernels(fmt, model).nodes(*(cols[k] for k in INPUTS), out)
    assert len(table) > 11 * 5
    for row, (key, value) in zip(out, table.items()):
        want = np.broadcast_to(np.asarray(value, dtype=np.float64), row.shape)
        assert np.array_equal(want.view(np.uint64), row.view(np.uint64)), (name, model.name, key)


def test_traced_code_refuses_a_data_dependent_branch():
    """The tracer records operations; a Python branch on a traced value cannot be recorded."""
    t = kernel.Tracer()
    x = kernel.Sym(t, "x")
    with pytest.raises(TypeError, match="data-dependent"):
        bool(x > 0)
    assert t.lines == ["v1 = x > 0"]


@pytest.mark.parametrize("name", FORMATS)
def test_round_to_format_is_format_round(name):
    fmt = get_format(name)
    rng = np.random.default_rng(3)
    work = batch.work_for(fmt)
    wide = sampling.fast_values(get_format("float64"), rng, 4000, emin=fmt.emin - fmt.p - 2,
                                emax=fmt.emax + 1)
    got = batch.round_array(fmt, wide.astype(work.dtype), None, work)
    for v, g in zip(wide.tolist(), got.tolist()):
        assert fmt.round(v) == float(g), (name, v.hex())
    if work is batch.EXTENDED:  # ties of hi broken by lo
        one, half_ulp = work.dtype(1), work.dtype(2) ** -53
        hi = np.array([one + half_ulp, one + half_ulp, one + 3 * half_ulp], dtype=work.dtype)
        lo = np.array([2.0**-80, -(2.0**-80), 0.0], dtype=work.dtype)
        got = batch.round_array(fmt, hi, lo, work)
        assert got.tolist() == [1.0 + 2.0**-52, 1.0, 1.0 + 4 * 2.0**-53]


def test_round_to_the_work_format_itself_keeps_every_bit():
    """Rounding to the work type's own format (float32's wide binary64 in binary64 pairs):
    hi + lo rounded once, every bit kept (the grid trick of the narrower formats kept one bit
    less: 1 + 2**-52 became 1, 1 + 3*2**-52 became 1 + 2**-50)."""
    fmt, work = get_format("float64"), batch.BINARY64
    rng = np.random.default_rng(5)
    hi = sampling.fast_values(get_format("float64"), rng, 4000).astype(work.dtype)
    with np.errstate(over="ignore"):  # (the largest values overflow: inf stays inf)
        hi = hi * (1 + work.dtype(2) ** (1 - work.precision))  # an odd last bit, mostly
    assert batch.round_array(fmt, hi, None, work).tolist() == hi.tolist()
    lo = hi * work.dtype(2) ** -(work.precision + 3)  # well inside half an ulp: hi stays
    assert batch.round_array(fmt, hi, lo, work).tolist() == hi.tolist()
    one = work.dtype(1)
    odd = one + work.dtype(2) ** (1 - work.precision)
    got = batch.round_array(fmt, np.array([odd, -odd, one]), None, work)
    assert got.tolist() == [odd, -odd, one]


@pytest.mark.parametrize("name", FORMATS)
def test_fast_values_cover_the_format(name):
    fmt = get_format(name)
    v = sampling.fast_values(fmt, np.random.default_rng(4), 40_000)
    assert all(fmt.contains(x) for x in v[:3000].tolist())
    assert np.isfinite(v).all()
    assert 0.45 < (v < 0).mean() < 0.55
    nonzero = np.abs(v[v != 0])
    assert nonzero.min() < fmt.smallest_normal  # subnormals drawn
    assert nonzero.max() >= 2.0 ** (fmt.emax - 1)
    window = sampling.fast_values(fmt, np.random.default_rng(4), 5000, emin=-2, emax=1,
                                  special=0.0)
    e = np.frexp(np.abs(window))[1] - 1
    assert set(e.tolist()) == {-2, -1, 0, 1}


@pytest.mark.skipif(not _has_numba(), reason="numba not installed")
def test_compiled_value_assembly_equals_numpy():
    from neuronspec.cases.compiled import assemble_values

    for name in FORMATS:
        fmt = get_format(name)
        rng = np.random.default_rng(9)
        raw = rng.bit_generator.random_raw(20_000)
        other = rng.bit_generator.random_raw(20_000)
        specials = np.array([0.0, -0.0, fmt.smallest_subnormal, 1.0, 2.0, 3.0, 4.0, 5.0])
        for lo, hi in ((fmt.emin - 1, fmt.emax), (-3, 3), (fmt.emin - 1, fmt.emin + 1)):
            want = sampling.assemble(raw, other, fmt.p - 1, lo, hi, fmt.emin, 700, specials)
            got = np.empty(len(raw))
            assemble_values(raw, other, fmt.p - 1, lo, hi - lo + 1, fmt.emin, 700, specials, got)
            assert np.array_equal(want.view(np.uint64), got.view(np.uint64)), (name, lo)


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("regime", list(REGIMES))
def test_regime_arrays_are_format_values(name, regime):
    fmt = get_format(name)
    cols = regime_arrays(fmt, regime, np.random.default_rng(6), 3000)
    for c in cols:
        assert np.isfinite(c).all()
        assert all(fmt.contains(x) for x in c[::7].tolist())
    lr = cols[4]
    # a negative lr only where the regime draws one (-0 included)
    assert (np.signbit(lr).all() if regime == "negative-lr" else (lr >= 0).all())
    assert (lr[:LR_BLOCK] == lr[0]).all()  # one lr per block (torch_sgd's runs)


@pytest.mark.slow
@pytest.mark.parametrize("name", FORMATS)
def test_batch_verdict_equals_scalar_verdict_thoroughly(name):
    """The recorded cross-check (spec/data/crosscheck.json) in small: 60,000 cases a format."""
    counts = crosscheck.crosscheck(name, 60_000, seed=11, workers=2)
    assert counts["cases"] == 60_000
    assert counts["disagreements"] == 0, counts["examples"]


@pytest.mark.parametrize("name", ["float64", "float32"])
def test_the_numpy_verdict_in_blocks_is_the_verdict_at_once(name, monkeypatch):
    """``check_batch``'s numpy paths judge a block of cases at a time (memory): the statuses,
    ratios and scalar-path counts of 2,500 cases in blocks of 1,000 are those of one block."""
    from neuronspec.cases.chunks import chunk_cases
    from neuronspec.implementations import load
    from reference.batch import verdict

    fmt = get_format(name)
    cols, _ = chunk_cases(fmt, 4, 0, 2500)
    out = load("numpy").run_batch(name, cols)
    outputs = {q: np.asarray(out[q], dtype=np.float64) for q in REQUIRED}
    moved = np.random.default_rng(4).random(2500) < 0.3  # some values one binary64 ulp up
    with np.errstate(over="ignore"):
        up = np.nextafter(outputs["w_new"], np.inf)
    outputs["w_new"] = np.where(moved, up, outputs["w_new"])
    whole = verdict.check_batch(fmt, cols, outputs, "ieee", engine="numpy")
    monkeypatch.setattr(verdict, "NUMPY_BLOCK", 1000)
    blocks = verdict.check_batch(fmt, cols, outputs, "ieee", engine="numpy")
    for q in REQUIRED:
        assert np.array_equal(whole.status[q], blocks.status[q]), q
        assert np.array_equal(whole.ratio[q], blocks.ratio[q], equal_nan=True), q
    assert whole.resolved_by == blocks.resolved_by
    assert len(set(whole.status["w_new"].tolist())) > 1  # (the moved values: more than one
    # kind of status)
