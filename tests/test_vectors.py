"""The language-neutral vectors: fresh (regenerated they are identical), valid against their
JSON Schema, with stable ids and written flag reasons; `vectors verify` accepts correct results
and rejects wrong ones."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reference.step import REQUIRED

from neuronspec.runs import vectors as V
from neuronspec.implementations import load

ROOT = Path(__file__).resolve().parents[1]
DIR = ROOT / "spec" / "vectors"


def test_vectors_are_not_stale():
    stale = V.stale(DIR)
    assert not stale, f"{stale} differ from what `neuronspec vectors` writes; regenerate and commit"


def test_vectors_match_their_schema_and_say_how_they_were_made():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((DIR / "schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    for fmt in ("float16", "bfloat16", "float32", "float64"):
        data = json.loads((DIR / f"{fmt}.json").read_text())
        jsonschema.validate(data, schema)
        assert data["generatedBy"] == "neuronspec vectors"
        tests = [t for g in data["testGroups"] for t in g["tests"]]
        ids = [t["tcId"] for t in tests]
        assert len(ids) == len(set(ids)) == data["numberOfTests"]
        assert ids[0] == 1 and min(i for i in ids if i >= 1000) == 1000
        flags = {f for t in tests for f in t["flags"]}
        assert flags <= set(data["notes"]), "every flag used has a written reason"
        for needed in ("SeedExample", "Cancellation", "Subnormal", "OutOfDomain", "LrZero"):
            assert needed in flags, f"{fmt}: no vector flagged {needed}"


def test_schema_lint_can_fail():
    jsonschema = pytest.importorskip("jsonschema")
    data = json.loads((DIR / "float32.json").read_text())
    data["testGroups"][0]["tests"][0]["flags"].append("NoSuchFlag")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, json.loads((DIR / "schema.json").read_text()))


def test_the_shipped_schemas_judge_as_jsonschema_validate_does():
    """``data.validate`` (its validators made once a process) raises what
    ``jsonschema.validate`` raises, message and place, and passes what it passes."""
    jsonschema = pytest.importorskip("jsonschema")
    from neuronspec import data

    schemas = ROOT / "spec" / "schemas"
    results = json.loads((schemas / "results.schema.json").read_text())
    entry = {"$ref": "#/$defs/result", "$defs": results["$defs"]}
    records = json.loads((schemas / "records.schema.json").read_text())
    vector_file = json.loads((DIR / "float16.json").read_text())
    del vector_file["testGroups"][0]["tests"][5:]  # (a few are enough)
    broken = json.loads(json.dumps(vector_file))
    broken["testGroups"][0]["tests"][3]["inputs"]["w"] = {"hex": 1}
    cases = [({"format": "float32", "tcId": 1, "outputs": {"y": "0x1p-1"}}, entry,
              ("results.schema.json", "result")),
             ({"format": "float32", "tcId": "1"}, entry, ("results.schema.json", "result")),
             ({"tcId": 2, "outputs": {"y": 0.5}}, entry, ("results.schema.json", "result")),
             ([{"format": "float32", "error": "no"}], results, ("results.schema.json",)),
             ({"results": "none"}, results, ("results.schema.json",)),
             ({"version": 1}, {"$ref": "#/$defs/sweeps", "$defs": records["$defs"]},
              ("records.schema.json", "sweeps")),
             (vector_file, json.loads((DIR / "schema.json").read_text()),
              ("vectors/schema.json",)),
             (broken, json.loads((DIR / "schema.json").read_text()), ("vectors/schema.json",))]
    verdicts = []
    for instance, schema, where in cases:
        try:
            jsonschema.validate(instance, schema)
            want = None
        except jsonschema.ValidationError as exc:
            want = (exc.message, list(exc.absolute_path))
        try:
            data.validate(instance, *where)
            got = None
        except jsonschema.ValidationError as exc:
            got = (exc.message, list(exc.absolute_path))
        assert got == want, (instance if len(str(instance)) < 200 else where)
        verdicts.append(got is None)
    assert verdicts == [True, False, False, True, False, False, True, False]


def test_a_vector_file_is_validated_once_for_its_bytes(tmp_path, monkeypatch):
    """Schema validation of a vector file is remembered by its bytes (a marker in the cache
    directory): the same file is not validated again; a changed one is, and one that does not
    match is refused every time; without a writable cache directory every load validates."""
    from neuronspec import data
    from neuronspec.errors import DataError

    monkeypatch.setenv("NEURONSPEC_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "vectors"
    folder.mkdir()
    content = json.loads((DIR / "float32.json").read_text())
    del content["testGroups"][0]["tests"][20:]
    (folder / "float32.json").write_text(json.dumps(content))
    validated = []
    real = data.validate
    monkeypatch.setattr(data, "validate", lambda *args: validated.append(1) or real(*args))
    for _ in range(2):
        assert len(V.load(folder)["float32"]) == 20
    assert len(validated) == 1
    content["testGroups"][0]["tests"][0]["flags"].append("NoSuchFlag")
    (folder / "float32.json").write_text(json.dumps(content))
    for _ in range(2):
        with pytest.raises(DataError, match="does not match the vectors' schema"):
            V.load(folder)
    assert len(validated) == 3
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("NEURONSPEC_CACHE_DIR", str(tmp_path / "file"))  # no directory there
    content["testGroups"][0]["tests"][0]["flags"].pop()
    (folder / "float32.json").write_text(json.dumps(content))
    for _ in range(2):
        assert len(V.load(folder)["float32"]) == 20
    assert len(validated) == 5


def test_seed_vector_holds_the_seed_numbers():
    data = json.loads((DIR / "float32.json").read_text())
    seed = data["testGroups"][0]["tests"][0]
    assert seed["flags"] == ["SeedExample"] and seed["inputs"]["b"]["hex"] == "-0x1.99999ap-4"
    assert seed["expected"]["dL_db"]["exact"] == "-0.100000001490116119384765625"


@pytest.mark.parametrize("name", ["manual", "numpy", "torch_sgd"])
def test_verify_accepts_bundled_results(name):
    try:
        impl = load(name)
    except Exception as exc:  # torch missing
        pytest.skip(str(exc))
    vectors = V.load(DIR)
    summary = V.verify(V.run_implementation(impl, vectors, list(vectors)), vectors)
    assert summary["failed"] == 0 and summary["checked"] > 200, summary["failures"][:3]


def test_verify_rejects_a_mutant_through_the_command_line(tmp_path):
    results = tmp_path / "results.json"
    mutant = ROOT / "tests" / "mutants" / "sign_flipped.py"
    run = subprocess.run([sys.executable, "-m", "neuronspec", "vectors", "run", f"{mutant}:step",
                          "--dir", str(DIR), "--output", str(results)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    proc = subprocess.run([sys.executable, "-m", "neuronspec", "vectors", "verify", str(results),
                           "--dir", str(DIR)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "FAIL float16" in proc.stdout and "dL_d" in proc.stdout


@pytest.mark.parametrize("content, words", [("{not json", "not a results file"),
                                             ('{"results": 3}', "not a results file")])
def test_verify_refuses_malformed_results_in_one_line(tmp_path, content, words):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    proc = subprocess.run([sys.executable, "-m", "neuronspec", "vectors", "verify", str(bad),
                           "--dir", str(DIR)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr


def test_verify_reports_unknown_ids_and_bad_values():
    vectors = V.load(DIR)
    s = V.verify([{"format": "float32", "tcId": 999999, "outputs": {}},
                  {"format": "float32", "tcId": 1, "outputs": {q: "0.1" for q in REQUIRED}}],
                 vectors)
    assert s["unknown"] == 1 and s["failed"] == 1
    assert "not a float32 value" in s["failures"][1]["reason"]
