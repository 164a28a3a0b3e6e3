"""The run vectors (spec/protocol.md R6, spec/vectors/sgd): fresh (regenerated they are
identical), valid against their JSON Schema, with stable ids, written flag reasons and runs
pinned where they say so; `vectors run --sgd` and `vectors verify` accept every bundled run
implementation and reject every run mutant (tests/mutants/sgd_*.py) at the test, step and
quantity its named bug says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reference.formats import FORMATS, exact_decimal, parse_hex

from neuronspec.cases.options import CONVENTIONS
from neuronspec.cli import main
from neuronspec.errors import DataError
from neuronspec.implementations import load
from neuronspec.runs import sgd_vectors as S
from neuronspec.runs import vectors as V

ROOT = Path(__file__).resolve().parents[1]
DIR = ROOT / "spec" / "vectors" / "sgd"
MUTANTS = ROOT / "tests" / "mutants"
PARAMS, BUFS = {"w_new", "b_new"}, {"buf_w", "buf_b"}
#: Where torch's fused CPU kernel rounds as no modelled evaluation does (tests/test_run_impls.py)
NOT_ALL_EXPLAINED = {("torch_sgd_fused", "float16"), ("torch_sgd_fused", "bfloat16")}


@pytest.fixture(scope="module")
def vectors():
    return S.load(DIR)


def _tests(fmt):
    content = json.loads((DIR / f"{fmt}.json").read_text())
    return content, [(g, t) for g in content["testGroups"] for t in g["tests"]]


@pytest.mark.parametrize("fmt", FORMATS)
def test_run_vectors_are_not_stale(fmt):
    """What `neuronspec vectors check --sgd` runs, one format a test (each regenerates its
    file: a few seconds; apart, pytest -n spreads them)."""
    assert S.stale(DIR, [fmt]) == [], f"regenerate with `{S.GENERATED_BY}`"


def test_run_vectors_match_their_schema_and_say_how_they_were_made():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((DIR / "schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert (ROOT / "neuronspec" / "data" / "vectors" / "sgd" / "float32.json").read_bytes() == \
        (DIR / "float32.json").read_bytes(), "the shipped copy is the spec's file"
    for fmt in FORMATS:
        content, tests = _tests(fmt)
        jsonschema.validate(content, schema)
        assert content["generatedBy"] == S.GENERATED_BY == "neuronspec vectors write --sgd"
        assert any(S.GENERATED_BY in line for line in content["header"])
        ids = [t["tcId"] for _, t in tests]
        assert len(ids) == len(set(ids)) == content["numberOfTests"]
        assert 50 <= len(ids) <= 200
        flags = {f for _, t in tests for f in t["flags"]}
        assert flags <= set(content["notes"]) and set(content["notes"]) <= set(S.flags())
        for needed in ("ExactRun", "Random", "StateLeak", "FirstStepDampening",
                       "DampeningComplement", "NesterovNewBuffer", "WeightDecayBeforeMomentum",
                       "MaximizeSign", "LrSchedule", "SignedZeroBuffer", "SubnormalBuffer",
                       "FirstStepMomentum", "NonFiniteState", "VelocityForm",
                       "ConventionAgreement", "DecoupledWeightDecay", "UndampenedTrace",
                       "DecayAfterTrace"):
            assert needed in flags, f"{fmt}: no vector flagged {needed}"
        assert {g["options"]["convention"] for g, _ in tests} == set(CONVENTIONS)
        for g, t in tests:
            assert g["format"] == fmt and g["options"]["buffer_format"] == fmt
            if "after" in t:  # it follows its run directly in the file
                assert ids[ids.index(t["tcId"]) - 1] == t["after"] and "StateLeak" in t["flags"]


def test_the_one_step_vectors_do_not_see_the_run_vectors():
    assert set(V.load(ROOT / "spec" / "vectors")) == set(FORMATS)  # (sgd/ is a subfolder)


def test_schema_lint_can_fail():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((DIR / "schema.json").read_text())
    content, _ = _tests("float16")
    content["testGroups"] = content["testGroups"][:3]  # runs, runs, steps from a state
    jsonschema.validate(content, schema)
    for spoil in (lambda c: c["testGroups"][0]["tests"][0]["flags"].append("NoSuchFlag"),
                  lambda c: c["testGroups"][2].update(type="SgdRun"),  # a StepFrom group's tests
                  lambda c: c["testGroups"][0]["options"].pop("maximize"),
                  lambda c: c["testGroups"][0]["tests"][0]["steps"][0]["expected"]["y"].pop(
                      "legal")):
        spoilt = json.loads(json.dumps(content))
        spoil(spoilt)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(spoilt, schema)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_exact_runs_are_pinned_and_from_is_the_exact_state(fmt):
    """Every step of an ExactRun has 'expected'; on every run, 'from' is the exact state after
    the step before (signed zeros aside) and every state quantity there has one legal value;
    'expected' is never written after a step that is not pinned."""
    _, tests = _tests(fmt)
    runs = [t for g, t in tests if g["type"] == "SgdRun"]
    for t in runs:
        pinned = True
        for k, step in enumerate(t["steps"], 1):
            if "ExactRun" in t["flags"]:
                assert "expected" in step, (t["tcId"], k)
            if not pinned:
                assert "expected" not in step, (t["tcId"], k)
            if "expected" not in step:
                pinned = False
                continue
            if k > 1:
                before = t["steps"][k - 2]["exactState"]
                for q, v in step["from"].items():
                    assert (v is None) == (before[q] is None)
                    assert v is None or parse_hex(v) == parse_hex(before[q]), (t["tcId"], k, q)
            state = [step["expected"][q] for q in ("w_new", "b_new", "buf_w", "buf_b")]
            pinned = all(e is None or (len(e["legal"]) == 1 and parse_hex(e["legal"][0])
                                       == parse_hex(e["exactHex"])) for e in state)
    assert sum("ExactRun" in t["flags"] for t in runs) >= 27
    assert all(len(t["steps"]) == 4 for t in runs if "ExactRun" in t["flags"]
               and fmt in ("float32", "float64") and t["tcId"] // 100 != 8)


def _verify(impl_name, vectors, formats=None):
    impl = load(impl_name)
    results = S.run_implementation(impl, vectors, formats or list(vectors))
    return results, S.verify(results, vectors)


@pytest.mark.parametrize("name", ["numpy", "manual", "torch_sgd", "torch_sgd_foreach",
                                  "torch_sgd_fused"])
def test_every_bundled_run_implementation_passes_its_run_vectors(name, vectors):
    if "torch" in name:
        pytest.importorskip("torch")
    results, summary = _verify(name, vectors)
    assert summary["failed"] == summary["missing"] == summary["malformed"] == 0, \
        summary["failures"][:3]
    supported = {"numpy": ("float16", "float32", "float64"), "manual": ("float64",)}.get(
        name, tuple(FORMATS))
    # (numpy computes every convention; the others torch's alone, declining the rest)
    assert summary["checked"] == sum(1 for f in supported for v in vectors[f].values()
                                     if name == "numpy" or v.mapping["convention"] == "torch"
                                     ) == summary["passed"]
    assert summary["stepsByReference"] > 0 and summary["stepsByVector"] > 3 * summary[
        "stepsByReference"]
    unexplained = {f["name"].split("-")[0] for f in summary["failures"]
                   if f["reason"].find("not what an admitted evaluation gives") >= 0}
    assert unexplained == {fmt for n, fmt in NOT_ALL_EXPLAINED if n == name}
    assert V.verified(summary) == (1 if unexplained else 0)
    assert V.verified(dict(summary, level="bounded")) == 0
    not_run = set(FORMATS) - {r["format"] for r in results if "tcId" in r}
    declined = set(supported) if name != "numpy" else set()  # (the other conventions' sets)
    assert set(summary["unsupported"]) == not_run | declined


#: mutant -> (the flag of the tests its bug must fail, the step, the quantities there)
NAMED_BUGS = {
    "sgd_dampening_first_step": ("FirstStepDampening", 1, PARAMS | BUFS),
    "sgd_tau_for_one_minus_tau": ("DampeningComplement", 2, PARAMS | BUFS),
    "sgd_nesterov_old_buffer": ("NesterovNewBuffer", 1, PARAMS),
    "sgd_decay_after_momentum": ("WeightDecayBeforeMomentum", 1, BUFS),
    "sgd_maximize_ignored": ("MaximizeSign", 1, PARAMS | BUFS),
    "sgd_maximize_at_update": ("MaximizeSign", 1, PARAMS | BUFS),
    "sgd_state_leaks": ("StateLeak", 1, PARAMS | BUFS),
    "sgd_velocity_form": ("ExactRun", 1, BUFS),
    "sgd_bfloat16_buffer": ("ExactRun", None, PARAMS | BUFS),
    # the conventions' forms (spec/neuron.md 8.6), each under its own declared convention
    "sgd_keras_coupled_decay": ("DecoupledWeightDecay", 1, PARAMS | BUFS),
    "sgd_optax_dampened_trace": ("UndampenedTrace", 1, PARAMS | BUFS),
    "sgd_optax_decay_before_trace": ("DecayAfterTrace", 1, PARAMS | BUFS),
}
#: The convention a mutant declares (the others: torch); it declines the other conventions.
CONVENTION_OF = {"sgd_keras_coupled_decay": "keras", "sgd_optax_dampened_trace": "optax",
                 "sgd_optax_decay_before_trace": "optax-decay-after"}


def test_the_named_bugs_are_the_run_mutants():
    assert set(NAMED_BUGS) == {p.stem for p in MUTANTS.glob("sgd_*.py")}


@pytest.mark.parametrize("mutant", sorted(NAMED_BUGS))
def test_each_run_mutant_fails_its_run_vectors_at_its_step(mutant, vectors):
    """Every ExactRun test carrying the flag of the mutant's bug (where its option set lets
    the bug show) fails, first at the step and in a quantity the bug says, named
    '<format>-sgd-<tcId> step k'."""
    flag, step, quantities = NAMED_BUGS[mutant]
    _, summary = _verify(f"{MUTANTS / mutant}.py:step", vectors, ["float32"])
    failed = {f["tcId"]: f for f in summary["failures"] if f["format"] == "float32"
              and "quantity" in f and f["reason"].find("admitted evaluation gives") < 0}
    assert summary["failed"] > 0 and V.verified(summary) == 1
    for f in failed.values():
        assert f["name"] == f"float32-sgd-{f['tcId']} step {f['step']}"
        assert f["reason"].startswith(f["quantity"] + " = ")
    options = {tc: v.mapping for tc, v in vectors["float32"].items()}
    expected = []
    for tc, v in vectors["float32"].items():
        if v.type != "SgdRun" or flag not in v.test["flags"] or "ExactRun" not in v.test["flags"]:
            continue
        o = options[tc]
        if o["convention"] != CONVENTION_OF.get(mutant, "torch"):
            continue  # (declined: another convention's form)
        if mutant == "sgd_maximize_at_update" and not (o["momentum"] or o["weight_decay"]):
            continue  # with neither, the earlier order gives the same values (8.7)
        if mutant == "sgd_velocity_form" and (not o["momentum"] or o["dampening"]
                                              or o["weight_decay"] or o["maximize"]):
            continue  # (without momentum it is torch's step; keras has none of the others)
        if mutant == "sgd_bfloat16_buffer" and (not o["momentum"] or tc % 100 != 1):
            continue  # (the first exact run of a set holds a buffer bfloat16 cannot)
        expected.append(tc)
    assert expected, f"no test carries {flag}"
    for tc in expected:
        assert tc in failed, (mutant, tc, vectors["float32"][tc].test["comment"])
        if step is not None:
            assert failed[tc]["step"] == step, failed[tc]
        if mutant == "sgd_decay_after_momentum" and options[tc]["nesterov"]:
            quantities = PARAMS | BUFS  # (the Nesterov direction adds the gradient it built)
        assert failed[tc]["quantity"] in quantities, failed[tc]


def test_a_state_leak_test_runs_right_after_its_run_whatever_the_order(vectors):
    """`after`: the run named is run again right before the test when another came between
    (here: the leak test first), and each test still gets exactly one result."""
    float32 = vectors["float32"]
    mutant = f"{MUTANTS / 'sgd_state_leaks'}.py:step"  # (loaded afresh: nothing kept yet)
    alone = {"float32": {904: float32[904]}}  # its run is not there: nothing leaks
    assert S.verify(S.run_implementation(load(mutant), alone, ["float32"]), alone)["passed"] == 1
    order = {"float32": {tc: float32[tc] for tc in (904, 101, 901)}}  # 904 first
    results = S.run_implementation(load(mutant), order, ["float32"])
    assert [r["tcId"] for r in results] == [904, 101, 901]
    summary = S.verify(results, order)
    assert (904, 1) in [(f["tcId"], f["step"]) for f in summary["failures"]]
    correct = S.verify(S.run_implementation(load("numpy"), order, ["float32"]), order)
    assert correct["passed"] == 3 and not correct["failures"]


def _result(vectors, tc, fmt="float32", impl="numpy"):
    results = S.run_implementation(load(impl), {fmt: {tc: vectors[fmt][tc]}}, [fmt])
    assert len(results) == 1
    return results[0]


def test_verify_judges_errors_missing_and_extra_steps_and_buffers(vectors):
    float32 = vectors["float32"]
    run = _result(vectors, 301)  # an exact run with momentum, 4 steps
    one = {"float32": {301: float32[301]}}
    assert S.verify([run], one)["passed"] == 1

    def reason(entry):
        s = S.verify([entry], one)
        assert s["failed"] == 1, s
        f = s["failures"][0]
        return f["name"], f.get("quantity", ""), f["reason"]

    short = dict(run, steps=run["steps"][:2])
    assert reason(short) == ("float32-sgd-301 step 3", "", "step 3 is missing (2 steps for 4)")
    longer = dict(run, steps=run["steps"] + run["steps"][-1:])
    assert reason(longer)[2] == "more steps than data (4)"
    errs = dict(run, steps=run["steps"][:1] + [{"error": "OverflowError: boom"}])
    assert reason(errs)[:2] == ("float32-sgd-301 step 2", "")
    nobuf = json.loads(json.dumps(run))
    nobuf["steps"][1]["outputs"]["buf_b"] = None
    assert reason(nobuf)[:2] == ("float32-sgd-301 step 2", "buf_b")
    assert "no buffer, where momentum keeps one" in reason(nobuf)[2]
    bad = json.loads(json.dumps(run))
    bad["steps"][0]["outputs"]["w_new"] = "0.1"
    assert reason(bad)[2] == "w_new: '0.1' is not a float32 value"

    # an error is allowed where a quantity may overflow: the NonFiniteState step
    nonfinite = {"float32": {957: float32[957]}}
    assert S.verify([{"format": "float32", "tcId": 957, "error": "OverflowError"}],
                    nonfinite)["passed"] == 1
    assert S.verify([{"format": "float32", "tcId": 957, "failure": "SystemExit"}],
                    nonfinite)["failed"] == 1
    assert S.verify([_result(vectors, 957)], nonfinite)["passed"] == 1  # inf, as legal


def test_verify_counts_unknown_duplicate_missing_and_unsupported(vectors):
    run = _result(vectors, 101)
    s = S.verify([run, run, {"format": "float32", "tcId": 99999, "steps": []},
                  {"format": "float32", "tcId": 251, "steps": []}], vectors)
    assert s["duplicates"] == 1 and s["unknown"] == 1 and s["malformed"] == 1
    assert s["missing"] == len(vectors["float32"]) - 2 and s["notRun"] == [
        "bfloat16", "float16", "float64"]
    declined = [{"format": "float32", "options": v.options, "unsupported": "not this set"}
                for v in vectors["float32"].values()] + \
        [{"format": "float32", "type": "SgdStepFrom", "unsupported": "offers no step_from"}]
    s = S.verify(declined, vectors)
    assert s["checked"] == 0 and s["missing"] == 0 and V.verified(s) == 2
    assert sum(s["unsupported"]["float32"].values()) == len(vectors["float32"])


def test_the_command_line_runs_and_verifies_the_run_vectors(tmp_path, capsys):
    folder = tmp_path / "sgd"  # (the float32 file alone: quicker)
    folder.mkdir()
    (folder / "float32.json").write_bytes((DIR / "float32.json").read_bytes())
    results = tmp_path / "results.json"
    mutant = f"{MUTANTS / 'sgd_nesterov_old_buffer'}.py:step"
    assert main(["vectors", "run", mutant, "--sgd", "--dir", str(folder), "--output",
                 str(results)]) == 0
    content = json.loads(results.read_text())
    assert content["vectors"] == "sgd" and content["implementation"] == "sgd_nesterov_old_buffer"
    capsys.readouterr()
    # the results file says "vectors": "sgd": no --sgd needed
    assert main(["vectors", "verify", str(results), "--dir", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "FAIL float32-sgd-401 step 1: w_new = " in out
    assert "neuronspec vectors verify --sgd: 88 tests checked" in out


@pytest.mark.parametrize("content, words", [
    ("{not json", "not a results file"),
    ('{"vectors": "sgd", "results": 3}', "not a results file")])
def test_verify_refuses_malformed_results_in_one_line(tmp_path, capsys, content, words):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["vectors", "verify", str(bad), "--sgd"]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_broken_run_vector_file_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "float32.json").write_text("{")
    assert main(["vectors", "verify", str(tmp_path / "r.json"), "--sgd", "--dir",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not a run-vector file" in err and len(err.strip().splitlines()) == 1
    content = json.loads((DIR / "float32.json").read_text())
    w = content["testGroups"][0]["tests"][0]["init"]["w"]
    w["hex"] = "0x1.00000001p+0"  # not a float32 value
    w["decimal"] = exact_decimal(parse_hex(w["hex"]), 100)
    (tmp_path / "float32.json").write_text(json.dumps(content))
    with pytest.raises(DataError, match="is not a float32 value"):
        S.load(tmp_path)
