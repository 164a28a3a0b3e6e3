"""CI-friendly output of `neuronspec check`: the JUnit XML (--junit) and the one-line summary
(--summary, and the last line printed), from real reports of a conformant and a wrong
implementation, and from reports changed to say what a real run rarely does (a stopped or
interrupted run, hostile names and messages)."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from neuronspec.artefacts.junit import render_junit
from neuronspec.artefacts.report import summary_line
from neuronspec.implementations import load
from neuronspec.runs.check import check

ROOT = Path(__file__).resolve().parents[1]
MUTANT = ROOT / "tests" / "mutants" / "y_one_ulp_high.py"
QUANTITIES = ("y", "loss", "dL_dw", "dL_db", "w_new", "b_new")
COUNTS = ("tests", "failures", "errors", "skipped")


@pytest.fixture(scope="module")
def conformant() -> dict:
    report = check([load("numpy")], examples=20, sweep=0, vectors=None)
    assert report["verdict"] == "conformant"
    return report


@pytest.fixture(scope="module")
def wrong() -> dict:
    report = check([load(f"{MUTANT}:step")], formats=["float32", "float64"], examples=20,
                   sweep=0, vectors=None)
    assert report["verdict"] == "non-conformant"
    return report


def junit(report: dict) -> ET.Element:
    """The report's JUnit XML, parsed, after checking the shape of the common JUnit schema."""
    text = render_junit(report)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "testsuites"
    total = dict.fromkeys(COUNTS, 0)
    for suite in root:
        assert suite.tag == "testsuite" and suite.get("name")
        float(suite.get("time"))
        tags = [child.tag for child in suite]
        assert tags == ["properties"] + ["testcase"] * (len(tags) - 1)
        for prop in suite.find("properties"):
            assert prop.tag == "property" and set(prop.attrib) == {"name", "value"}
        found = dict.fromkeys(COUNTS, 0)
        for case in suite.iter("testcase"):
            found["tests"] += 1
            assert case.get("name") and case.get("classname", "").startswith("neuronspec.")
            float(case.get("time"))
            outcome = [child for child in case]
            assert len(outcome) <= 1
            for child in outcome:
                assert child.tag in ("failure", "error", "skipped")
                assert child.get("message") and "\n" not in child.get("message")
                found[{"failure": "failures", "error": "errors"}.get(child.tag, child.tag)] += 1
        assert {k: int(suite.get(k)) for k in COUNTS} == found
        total = {k: total[k] + found[k] for k in COUNTS}
    assert {k: int(root.get(k)) for k in COUNTS} == total
    return root


def cases(root: ET.Element) -> dict:
    """(classname, name) -> the testcase's outcome element's tag, or "passed"."""
    return {(c.get("classname"), c.get("name")): (c[0].tag if len(c) else "passed")
            for c in root.iter("testcase")}


def test_a_conformant_run_is_all_passed_but_the_unsupported_format(conformant):
    root = junit(conformant)
    (suite,) = root
    assert suite.get("name") == "numpy"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) \
        == ("24", "0", "0", "6")
    outcome = cases(root)
    assert set(outcome) == {(f"neuronspec.numpy.{f}", q) for q in QUANTITIES
                            for f in ("float16", "bfloat16", "float32", "float64")}
    for (classname, _), tag in outcome.items():
        assert tag == ("skipped" if classname.endswith("bfloat16") else "passed")
    skipped = suite.find("testcase[@classname='neuronspec.numpy.bfloat16']/skipped")
    assert skipped.get("message").startswith("unsupported: numpy has no native bfloat16")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["model"] == "ieee" and props["level"] == "exact" and props["seed"] == "0"
    assert props["examples"] == "20" and props["suiteVersion"] == conformant["suiteVersion"]
    assert props["platform"] == conformant["platform"]
    assert props["float32.fingerprint.forward"].startswith("two roundings")


def test_failure_elements_are_exactly_on_the_failing_quantities(wrong):
    root = junit(wrong)
    outcome = cases(root)
    impl = wrong["implementations"][0]
    for fmt, r in impl["formats"].items():
        classname = f"neuronspec.y_one_ulp_high.{fmt}"
        for q, st in r["quantities"].items():
            failing = st["failures"] or st["unexplained"]  # the run's level is exact
            assert outcome[(classname, q)] == ("failure" if failing else "passed"), (fmt, q)
        case_failures = sum(r["propertyFailures"].values()) - sum(
            st["failures"] for st in r["quantities"].values())
        assert (outcome.get((classname, "step")) == "failure") == (case_failures > 0)
    assert outcome[("neuronspec.y_one_ulp_high.float32", "y")] == "failure"
    failure = root.find("*/testcase[@classname='neuronspec.y_one_ulp_high.float32']"
                        "[@name='y']/failure")
    n = impl["formats"]["float32"]["quantities"]["y"]["failures"]
    assert failure.get("message").startswith(f"y: {n} failures at the bounded level")
    assert "y is outside its bound" in failure.get("message")
    assert "replay: neuronspec replay " in failure.text and "--dtype float32" in failure.text


def test_at_the_bounded_level_unexplained_values_do_not_fail(conformant):
    """As a report says it: 3 values of w_new no admitted evaluation gives, within bounds."""
    report = copy.deepcopy(conformant)
    r = report["implementations"][0]["formats"]["float32"]
    r["quantities"]["w_new"]["unexplained"] = 3
    r["levels"] = {"bounded": "conformant", "exact": "non-conformant"}
    r["status"] = report["verdict"] = report["implementations"][0]["verdict"] = "non-conformant"
    assert cases(junit(report))[("neuronspec.numpy.float32", "w_new")] == "failure"
    assert "float32 ✗ w_new (3 unexplained), float64 ✓" in summary_line(report)
    report["settings"]["level"] = "bounded"
    r["status"] = report["verdict"] = report["implementations"][0]["verdict"] = "conformant"
    assert cases(junit(report))[("neuronspec.numpy.float32", "w_new")] == "passed"
    assert summary_line(report).startswith("neuronspec check: CONFORMANT — ")


def test_a_stopped_run_is_an_error_and_the_formats_after_it_are_skipped(wrong):
    report = copy.deepcopy(wrong)
    impl = report["implementations"][0]
    del impl["formats"]["float64"]
    impl["error"] = "y_one_ulp_high failed 3 restarts in a row; last: exited with status 3"
    root = junit(report)
    outcome = cases(root)
    step = root.find("*/testcase[@name='step']/error")
    assert step.get("type") == "stopped" and "failed 3 restarts" in step.get("message")
    assert all(outcome[("neuronspec.y_one_ulp_high.float64", q)] == "skipped"
               for q in QUANTITIES)
    assert root.get("errors") == "1"
    assert re.search(r"float32 ✗ y \(\d+ failures: error/bound 2\), step \(.*run stopped\)",
                     summary_line(report))
    assert "(float64 not reached)" in summary_line(report)


def test_an_interrupted_run_says_so(conformant):
    report = copy.deepcopy(conformant)
    del report["implementations"][0]["formats"]["float64"]
    report["interrupted"], report["verdict"] = "SIGINT", "not checked"
    root = junit(report)
    error = root.find("*/testcase[@classname='neuronspec.numpy.float32'][@name='step']/error")
    assert error.get("type") == "interrupted" and "SIGINT" in error.get("message")
    skipped = root.find("*/testcase[@classname='neuronspec.numpy.float64']/skipped")
    assert "interrupted by SIGINT" in skipped.get("message")
    assert summary_line(report).startswith(
        "neuronspec check: NOT CHECKED (INTERRUPTED BY SIGINT) — numpy float16 ✓, "
        "float32 ✓ (interrupted) (bfloat16 unsupported; float64 not reached); ")


HOSTILE = 'a<b&"c\'\x00\x1b[31m\ud800\ufffe]]>\n# [x](http://e) @you'


def test_names_and_messages_from_the_implementation_yield_well_formed_xml(wrong):
    report = copy.deepcopy(wrong)
    impl = report["implementations"][0]
    impl["name"] = impl["origin"] = HOSTILE
    for r in impl["formats"].values():
        for f in r["failures"]:
            f["message"] = HOSTILE + "\n" + f["message"]
        r["behaviourOutsideModel"].append(HOSTILE)
    text = render_junit(report)
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]", text)
    root = junit(report)
    suite = root[0]
    assert suite.get("name") == 'a<b&"c\'\\x00\\x1b[31m\\ud800\\ufffe]]> # [x](http://e) @you'
    assert {p.get("value") for p in suite.iter("property") if p.get("name") == "origin"} \
        == {suite.get("name")}
    failure = root.find("*/testcase[@name='y']/failure")
    assert failure.text.startswith('a<b&"c\'\\x00\\x1b[31m\\ud800\\ufffe]]>\n# [x]')
    assert all(" " not in c.get("classname") for c in root.iter("testcase"))
    line = summary_line(report)
    assert "\n" not in line and not set('<>&"[]@#\x00\x1b') & set(line), line
    assert "NON-CONFORMANT — a_b_c_" in line


def test_the_summary_is_one_short_line_naming_the_failing_quantity(wrong, conformant):
    line = summary_line(wrong)
    assert line.startswith("neuronspec check: NON-CONFORMANT — y_one_ulp_high float32 ✗ y (")
    assert "\n" not in line and len(line) <= 300
    assert ", model ieee, level exact, " in line and line.endswith(f"{wrong['seconds']} s")
    assert summary_line(wrong, ascii=True).isascii()
    assert "float32 FAIL y (" in summary_line(wrong, ascii=True)
    many = copy.deepcopy(wrong)
    many["implementations"] = [copy.deepcopy(i) for i in wrong["implementations"] * 12] + \
        copy.deepcopy(conformant["implementations"])
    line = summary_line(many)
    assert len(line) <= 300 and re.search(r"; \+\d+ more; ", line), line
    total = sum(r["cases"] for i in many["implementations"] for r in i["formats"].values())
    assert f"; {total:,} cases, " in line


def test_cli_writes_junit_and_the_summary_as_its_last_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "neuronspec", "check", "numpy", f"{MUTANT}:step", "--dtype",
         "float32,bfloat16", "--examples", "10", "--sweep", "0", "--vectors", "",
         "--junit", str(tmp_path / "r.xml"), "--summary", str(tmp_path / "s.txt")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr
    summary = (tmp_path / "s.txt").read_text(encoding="utf-8")
    assert summary.count("\n") == 1 and proc.stdout.splitlines()[-1] == summary.strip()
    assert summary.startswith("neuronspec check: NON-CONFORMANT — numpy float32 ✓ (bfloat16 "
                              "unsupported); y_one_ulp_high float32 ✗ y (")
    text = (tmp_path / "r.xml").read_text(encoding="utf-8")
    root = ET.fromstring(text.encode("utf-8"))
    assert [s.get("name") for s in root] == ["numpy", "y_one_ulp_high"]
    numpy, mutant = root
    assert (numpy.get("tests"), numpy.get("failures"), numpy.get("skipped")) == ("12", "0", "6")
    assert int(mutant.get("tests")) >= 12 and int(mutant.get("failures")) >= 2
