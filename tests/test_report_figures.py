"""The figures of a check report mean what they say (issue "A report a maintainer reads at a
glance"): errors in ulps of the scale the bound is built on, the note on a ratio of 1, the
shares of correctly rounded and exactly explained values, why each unchecked value is
unchecked, and the report's schema, which can fail."""

from __future__ import annotations

import json
import math
import random
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from neuronspec.artefacts import jsontext
from neuronspec.artefacts.html import render_html
from neuronspec.artefacts.report import render_markdown, render_text, share, unchecked_words
from neuronspec.cases.chunks import chunk_cases
from neuronspec.implementations import load
from neuronspec.runs.check import check
from reference.batch.verdict import overflow_origins
from reference.bounds import OutOfDomain, case_bounds, overflow_words
from reference.exact import exact_nodes, exact_scales
from reference.formats import get_format, to_fraction
from reference.step import ANCESTORS, INPUTS, NODE, NODE_OF, NODES, REQUIRED

MUTANTS = str(Path(__file__).resolve().parent / "mutants") + "/"


def _abs_step(case):
    """The step on |inputs| with differences as sums, in Fractions (the definition)."""
    v = {k: abs(Fraction(x)) for k, x in zip(INPUTS, case)}
    v["p"] = v["w"] * v["x"]
    v["y"] = v["p"] + v["b"]
    v["r"] = v["y"] + v["t"]
    v["sq"] = v["r"] * v["r"]
    v["loss"] = v["sq"] / 2
    v["g"] = v["r"]
    v["gw"] = v["g"] * v["x"]
    v["lgw"] = v["lr"] * v["gw"]
    v["w_new"] = v["w"] + v["lgw"]
    v["lgb"] = v["lr"] * v["g"]
    v["b_new"] = v["b"] + v["lgb"]
    return v


@pytest.mark.parametrize("fmt", ["float16", "float32", "float64"])
def test_scales_are_the_step_on_magnitudes_and_bound_every_node(fmt):
    cols, _ = chunk_cases(get_format(fmt), 7, 0, 300)
    for i in range(300):
        case = tuple(float(cols[k][i]) for k in INPUTS)
        scales = exact_scales(*case)
        assert scales == _abs_step(case)
        exact = exact_nodes(*case)
        for n in NODE:
            assert abs(to_fraction(exact[n])) <= scales[n]


def test_ancestors_follow_the_step():
    assert ANCESTORS["w_new"] == ("p", "y", "r", "g", "gw", "lgw", "w_new")
    assert ANCESTORS["loss"] == ("p", "y", "r", "sq", "loss")
    for node in NODES:
        assert ANCESTORS[node.name][-1] == node.name
        for a in node.args:
            if a in NODE:
                assert set(ANCESTORS[a]) <= set(ANCESTORS[node.name])


@pytest.mark.parametrize("fmt", ["float16", "float32", "float64"])
def test_the_batch_path_names_the_same_overflow_as_the_scalar_one(fmt):
    """Why a value is outside the domain: the scalar chain (case_bounds) and the array chain
    (overflow_origins) name the same first node, on cases where something may overflow."""
    f = get_format(fmt)
    cols, _ = chunk_cases(f, 11, 0, 4000)
    origins = overflow_origins(f, cols)
    seen = 0
    for i in np.flatnonzero(origins["w_new"] >= 0)[:60].tolist() + list(range(20)):
        case = tuple(float(cols[k][i]) for k in INPUTS)
        bounds = case_bounds(f, case)
        for q in REQUIRED:
            o = int(origins[q][i])
            if isinstance(bounds[q], OutOfDomain):
                seen += 1
                assert o >= 0 and NODES[o].name == bounds[q].origin, (case, q)
                assert bounds[q].origin in ANCESTORS[NODE_OF[q]]
            else:
                assert o == -1, (case, q)
    assert seen > 50
    assert overflow_words("sq") == "r*r may overflow"


@pytest.fixture(scope="module")
def correct_report():
    from neuronspec.runs.vectors import load as load_vectors

    return check([load("numpy")], formats=["float32", "float64"], examples=60, sweep=4000,
                 vectors=load_vectors())


def test_a_correct_implementation_shows_a_few_ulps_of_scale_never_inf(correct_report):
    report = correct_report
    for fmt, r in report["implementations"][0]["formats"].items():
        for q, st in r["quantities"].items():
            assert 0 < st["ulpsOfScaleValues"] <= st["caseByCase"] <= st["checked"]
            # a correctly rounding implementation is within a few ulps of the scale: the
            # bound's constants (a couple of roundings on the way), whatever cancels
            assert st["worstUlpsOfScale"] <= 4, (fmt, q, st)
            assert 0 < st["correctlyRounded"] <= st["caseByCase"]
            assert st["worstErrorOverBound"] <= 1
            assert st["explained"] > 0 and st["unexplained"] == 0
            # every unchecked value says why, and the reasons add up
            assert sum(st["outOfDomainWhy"].values()) == st["outOfDomain"], (fmt, q)
            assert all(w.endswith("may overflow") for w in st["outOfDomainWhy"])
            if st["worstErrorOverBound"] == 1:  # the bound attained: by a legal value
                assert st["worstIsCorrectlyRounded"] or st["worstEvaluation"]
    text = render_text(report)
    assert "inf" not in text.split("err/bound:")[0].replace("infinit", "")
    assert "spec/tolerances.md 2.5" in text and "r*x may overflow" in text
    assert max(len(line) for line in text.splitlines()) <= 100
    md = render_markdown(report)
    assert "| err/bound | ulps of scale | rounded | exact |" in md


def test_the_plot_data_are_the_checked_values(correct_report):
    r = correct_report["implementations"][0]["formats"]["float32"]
    plot = r["plot"]
    assert plot["peer"] == "torch.testing.assert_close"
    assert plot["peerTolerance"] == {"rtol": 1.3e-6, "atol": 1e-5}
    for q in REQUIRED:
        points = plot["points"][q]
        assert len(points) == r["quantities"][q]["caseByCase"]
        assert min(k for k, _, _ in points if k != "inf") >= 1
        assert max(b for _, b, _ in points) <= 1
    # the cancellation regimes are plotted: r = y - t far below its parts
    assert max(k if k != "inf" else math.inf for k, _, _ in plot["points"]["dL_db"]) > 1e3
    # the peer's tolerance is crossed where the bound is not (cancellation): the point of it
    assert any(p > 1 for q in REQUIRED for _, _, p in plot["points"][q])
    peers = plot["peers"]
    assert set(peers) == {"torch.testing.assert_close", "numpy.testing.assert_allclose",
                          "jax check_grads"}
    for tool, p in peers.items():
        assert p["values"] == sum(r["quantities"][q]["caseByCase"] for q in REQUIRED)
        assert p["rejectedWithinBound"] > 0 and p["acceptedOutsideBound"] == 0, tool
    assert "rejects, within the bound" in render_html(correct_report)


def test_wrong_implementations_show_in_the_figures():
    """The figures can fail: a loss without its 1/2 is off by the whole loss (millions of
    ulps of its scale), a y one ulp high is never the correctly rounded y."""
    report = check([load(MUTANTS + "loss_missing_half.py:step"), load(MUTANTS + "y_one_ulp_high.py:step")],
                   formats=["float32"], examples=40, sweep=0, vectors=None)
    half, ulp = (i["formats"]["float32"] for i in report["implementations"])
    assert half["status"] == ulp["status"] == "non-conformant"
    loss = half["quantities"]["loss"]
    assert loss["failures"] > 0
    assert loss["worstUlpsOfScale"] > 1e5  # the failing values count too ...
    assert max(b for _, b, _ in half["plot"]["points"]["loss"]) > 1  # ... and are plotted
    y = ulp["quantities"]["y"]
    assert y["correctlyRounded"] < y["caseByCase"] / 10
    # one ulp off: outside the bound, and every peer's default tolerance lets some through
    assert all(p["acceptedOutsideBound"] > 0 for p in ulp["plot"]["peers"].values())
    assert y["unexplained"] > 0
    text = render_text(report)
    assert "inf" not in text.split("err/bound:")[0].replace("infinit", "")


def test_share_reads_100_only_when_all():
    assert share(5, 5) == "100%" and share(0, 5) == "0%" and share(0, 0) == "-"
    assert share(99_999, 100_000) == "99.9%"
    assert share(1, 100_000) == "<0.1%" and share(1, 1_000) == "0.1%"


def test_unchecked_values_without_a_reason_are_still_explained():
    r = {"quantities": {q: {"outOfDomain": 3 if q == "y" else 0,
                            "outOfDomainWhy": {"w*x may overflow": 1} if q == "y" else {}}
                        for q in REQUIRED}}
    words = unchecked_words(r)
    assert "w*x may overflow: 1 (y 1)" in words
    assert "an admitted evaluation may overflow: 2 (y 2)" in words


def test_the_schema_rejects_a_malformed_report(monkeypatch):
    """Every report is validated (the self-tests set NEURONSPEC_VALIDATE_REPORTS): a report
    that does not match its schema is an error, not a file."""
    import jsonschema

    from neuronspec.runs import check as C

    monkeypatch.setenv(C.VALIDATE, "1")
    monkeypatch.setattr(C, "REPORT_VERSION", 1)  # an old version with the new fields
    with pytest.raises(jsonschema.ValidationError):
        check([load("numpy")], formats=["float32"], examples=5, sweep=0, vectors=None)


def test_number_arrays_stay_on_one_line_and_round_trip():
    value = {"points": [[1.0, 0.5, "inf"], [2.5e-300, 0.0, 1e308]], "n": 3,
             "nested": {"case": ["0x1p-3", "-0x1p+0"]}, "nan": math.nan}
    text = jsontext.dumps(value, indent=1)
    assert json.loads(text) == jsontext.standard(value)
    assert '[1.0, 0.5, "inf"]' in text
    rng = random.Random(1)
    big = [[rng.random(), rng.random() * 1e-300, -rng.random()] for _ in range(50)]
    assert json.loads(jsontext.dumps(big, indent=2)) == big
