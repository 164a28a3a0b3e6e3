"""``neuronspec soundness --runs``: the run bounds measured per format and option set, recorded
in spec/data/run_soundness.json and rendered in spec/tolerances.md 2.8."""

from __future__ import annotations

from fractions import Fraction

import pytest

from neuronspec.artefacts import records, tables
from neuronspec.cases.options import DEFAULT_SETS, parse_spec, with_convention
from neuronspec.runs import run_soundness


def test_a_small_measurement_is_sound_recorded_and_rendered(tmp_path):
    report = run_soundness.soundness_runs_report(["float32"], 12, seed=5)
    sets = report["formats"]["float32"]
    assert len(sets) == len(DEFAULT_SETS)
    assert all(r["violations"] == 0 and r["values"] > 50 for r in sets.values())
    assert max(r["worst"]["w_new"] for r in sets.values()) > 0.3  # (tight, not vacuous)
    path = tmp_path / "run_soundness.json"
    run_soundness.record(report, path)
    recorded = records.load("run_soundness", path)
    assert recorded["runs"]["float32"]["command"].startswith("neuronspec soundness --runs")
    context = tables.run_soundness_context(recorded)
    assert len(context["rows"]) == len(DEFAULT_SETS) and context["violations"] == 0


def test_a_convention_is_recorded_beside_torchs_sets(tmp_path):
    """A measurement under another convention (spec/neuron.md 8.6) adds its sets to the
    format's and keeps torch's; measured again, it replaces its own."""
    path = tmp_path / "run_soundness.json"
    run_soundness.record(run_soundness.soundness_runs_report(["float16"], 8, seed=5), path)
    keras = [with_convention(parse_spec("momentum=0.75,weight_decay=0.125"), "keras")]
    report = run_soundness.soundness_runs_report(["float16"], 8, seed=5, sets=keras,
                                                 convention="keras")
    assert report["command"].endswith("--convention keras --options "
                                      "momentum=0.75,weight_decay=0.125")
    for _ in range(2):
        run_soundness.record(report, path)
        recorded = records.load("run_soundness", path)
        sets = recorded["formats"]["float16"]
        assert len(sets) == len(DEFAULT_SETS) + 1 and sets[keras[0].spec()]["violations"] == 0
        assert set(recorded["runs"]) == {"float16", "float16 keras"}
    rows = tables.run_soundness_context(recorded)["rows"]
    assert rows[-1]["options"] == "momentum=0.75,weight_decay=0.125,convention=keras"


def test_an_unsound_bound_is_caught(monkeypatch):
    """The measurement can fail: bounds a quarter of the true ones are violated, and the first
    violation is named."""
    true_bounds = run_soundness.sgd_bounds

    def quarter(*args, **kwargs):
        return {q: b / 4 if isinstance(b, Fraction) else b
                for q, b in true_bounds(*args, **kwargs).items()}

    monkeypatch.setattr(run_soundness, "sgd_bounds", quarter)
    part = run_soundness.run_chunk({"format": "float16", "set": 1, "seed": 0, "chunk": 0,
                                    "cases": 12})
    assert part["violations"] > 0 and "outside its bound" in part["first"]


@pytest.mark.parametrize("fmt", ["float16", pytest.param("float64", marks=pytest.mark.slow)])
def test_the_batch_path_gives_the_scalar_paths_figures(fmt):
    """The batch path (bounds, legal evaluations and judgement on arrays, the values at their
    bound judged against the exact one) judges the same steps as the scalar path, with the same
    counts and the same worst error/bound, in every option set."""
    batch = run_soundness.soundness_runs_report([fmt], 90, seed=3)
    scalar = run_soundness.soundness_runs_report([fmt], 90, seed=3, batch=False)
    for fmt, sets in scalar["formats"].items():
        for key, s in sets.items():
            b = batch["formats"][fmt][key]
            assert {k: b[k] for k in ("cases", "values", "violations", "outside")} == \
                {k: s[k] for k in ("cases", "values", "violations", "outside")}, (fmt, key)
            assert all(abs(b["worst"][q] - s["worst"][q]) < 1e-9 for q in s["worst"])
            assert s["values"] > 300


def test_an_unsound_batch_bound_is_caught(monkeypatch):
    """The batch path can fail too: quartered batch bounds are violated."""
    from reference.batch import optim_chain

    true_bounds = optim_chain.batch_sgd_bounds

    def quarter(*args, **kwargs):
        return {q: None if b is None else b._replace(bound=b.bound / 4, low=b.low / 4,
                                                     high=b.high / 4)
                for q, b in true_bounds(*args, **kwargs).items()}

    monkeypatch.setattr(optim_chain, "batch_sgd_bounds", quarter)
    part = run_soundness.run_chunk({"format": "float32", "set": 1, "seed": 0,
                                    "chunks": [(1, 60)]})
    assert part["violations"] > 0 and "outside its bound" in part["first"]


@pytest.mark.parametrize("model", ["ieee+hyper-binary64", "ieee+lr-binary64"])
def test_a_model_is_measured_on_both_paths_and_recorded_apart(model, tmp_path):
    """Under another model, on a named option set: the batch path gives the scalar path's
    figures, the record keeps them under its models (the ieee entries untouched) and the
    tables render them in a table of their own."""
    spec = parse_spec("momentum=0.9,dampening=0.1,weight_decay=1e-4")
    batch = run_soundness.soundness_runs_report(["float32"], 30, seed=4, model=model,
                                                sets=[spec])
    scalar = run_soundness.soundness_runs_report(["float32"], 30, seed=4, model=model,
                                                 sets=[spec], batch=False)
    (key,) = batch["formats"]["float32"]
    b, s = batch["formats"]["float32"][key], scalar["formats"]["float32"][key]
    assert {k: b[k] for k in ("cases", "values", "violations")} == \
        {k: s[k] for k in ("cases", "values", "violations")} and s["violations"] == 0
    assert f"--model {model}" in batch["command"]
    path = tmp_path / "run_soundness.json"
    run_soundness.record(run_soundness.soundness_runs_report(["float32"], 12, seed=5), path)
    run_soundness.record(batch, path)
    recorded = records.load("run_soundness", path)
    assert list(recorded["models"]) == [model] and len(recorded["formats"]["float32"]) == \
        len(DEFAULT_SETS)
    context = tables.run_soundness_context(recorded)
    assert [(r["model"], r["options"]) for r in context["model_rows"]] == [(model, key)]
