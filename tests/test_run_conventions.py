"""Runs under the conventions keras, optax and optax-decay-after (spec/neuron.md 8.6,
spec/protocol.md R1, R7): the bundled numpy forms pass at the exact level with a fingerprint of
their own operations, a mutant of each convention fails at the step and quantity its bug
says, and an option set outside a convention's domain is a one-line usage error."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuronspec.cases.options import (check_sets, declared_sets, default_sets, parse_spec,
                                     reference_options, with_convention)
from neuronspec.cli import main
from neuronspec.implementations.load import load
from neuronspec.runs.sgd import check_runs
from reference.optim_judge import judge_run

QUICK = dict(runs=2, steps=3)

#: (mutant, convention, options, (first failing step, quantity))
HERE = Path(__file__).resolve().parent
MUTANTS = [
    ("sgd_keras_coupled_decay", "keras", "momentum=0.75,weight_decay=0.125", (1, "buf_w")),
    ("sgd_optax_dampened_trace", "optax", "momentum=0.75", (1, "w_new")),
    ("sgd_optax_decay_before_trace", "optax-decay-after", "momentum=0.75,weight_decay=0.125",
     (1, "buf_w")),
    # keras's velocity, correct under keras, reported under the torch convention (8.7)
    ("sgd_velocity_form", "torch", "momentum=0.75", (1, "buf_w")),
]


@pytest.mark.parametrize("convention", ["keras", "optax", "optax-decay-after"])
def test_the_bundled_numpy_form_passes_at_the_exact_level(convention):
    impl = load("numpy")
    spec = "momentum=0.75,weight_decay=0.125,nesterov"
    (result,) = check_runs(impl, ["float16"], [with_convention(parse_spec(spec), convention)],
                           **QUICK)
    assert result.verdict == "conformant" and not result.unsupported, result.failures
    assert result.steps == 6 and result.from_states == 2
    assert result.consistent  # the fingerprint: the evaluations giving every value
    assert f"convention={convention}" in result.spec
    # ... and its state is its convention's: the same run judged under torch fails at step 1
    # (keras's velocity, optax's trace of the gradient without the decay)
    options = with_convention(parse_spec(spec), convention).for_format("float16")
    data = [(1.5, 0.25, 0.125), (-0.75, 1.0, 0.25)]
    steps = list(impl.runner(0.75, -0.5, data, dict(options), "float16"))
    torch = reference_options(dict(options, convention="torch"))
    assert judge_run("float16", 0.75, -0.5, data, reference_options(options), steps).ok
    failure = judge_run("float16", 0.75, -0.5, data, torch, steps).first_failure()
    if convention == "optax":  # O1: the decay before the trace is torch's step, rounded too
        assert failure is None
    else:
        assert failure[0] == 1 and failure[1].quantity in ("w_new", "buf_w")


@pytest.mark.parametrize("mutant,convention,spec,expected", MUTANTS,
                         ids=[m for m, *_ in MUTANTS])
def test_a_mutant_of_each_convention_fails_at_its_step_and_quantity(mutant, convention, spec,
                                                                    expected):
    impl = load(f"{HERE / 'mutants' / mutant}.py:step")
    (result,) = check_runs(impl, ["float32"], [with_convention(parse_spec(spec), convention)],
                           **QUICK)
    assert result.verdict == "non-conformant"
    first = min((f["step"], f["quantity"]) for f in result.failures)
    assert first == expected, result.failures
    replays = [f["replay"] for f in result.failures if f["replay"]]
    assert replays and all(r.startswith("neuronspec replay") and
                           (convention == "torch" or f"convention={convention}" in r)
                           for r in replays), replays


@pytest.mark.parametrize("args,words", [
    (["--convention", "keras", "--options", "momentum=1.5"], "between [0, 1]"),
    (["--convention", "keras", "--options", "momentum=0.5,dampening=0.1"], "no dampening"),
    (["--convention", "optax", "--options", "maximize"], "no maximize"),
    (["--options", "momentum=0.5,convention=keras", "--convention", "optax"],
     "--convention says optax"),
    (["--convention", "keras", "--buffer-format", "float32", "--dtype", "float16"],
     "torch convention only"),
])
def test_options_outside_a_conventions_domain_are_a_one_line_usage_error(args, words, capsys):
    assert main(["check", "numpy", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err


def test_option_sets_under_a_convention():
    assert all(s.convention == "keras" and float(s.momentum) <= 1
               for s in default_sets("keras"))
    assert [s.spec() for s in declared_sets([], "optax")] == \
        [s.spec() for s in default_sets("optax")]
    (s,) = declared_sets(["momentum=0.5,convention=optax-decay-after"])
    assert s.convention == "optax-decay-after"
    assert parse_spec(s.spec()) == s  # (the SPEC names its convention)


def test_every_entry_point_checks_a_convention_against_the_model():
    """``check_sets`` (the command line's check, sweep and soundness, and the pytest plugin):
    hyper-binary64 is covered for torch's runs only."""
    keras = declared_sets(["momentum=0.5"], "keras")
    check_sets(keras, ["float32"], "ieee")
    with pytest.raises(ValueError, match="torch convention only"):
        check_sets(keras, ["float32"], "ieee+hyper-binary64")
    check_sets(declared_sets(["momentum=0.5"]), ["float32"], "ieee+hyper-binary64")
    with pytest.raises(ValueError):  # (a value float16 overflows)
        check_sets(declared_sets(["weight_decay=1e6"]), ["float16"], "ieee")


def test_keras_on_torch_passes_where_its_operations_are_the_conventions(monkeypatch):
    """Keras 3 itself (examples/keras_sgd.py; skipped without keras): momentum alone is the
    convention's operations, judged at the exact level (its decay and Nesterov are other
    operations on the torch backend: spec/neuron.md 8.8)."""
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    pytest.importorskip("keras")  # (which imports torch: skipped without either)
    impl = load("examples/keras_sgd.py:step")
    (result,) = check_runs(impl, ["float32"], [with_convention(parse_spec("momentum=0.875"),
                                                               "keras")], **QUICK)
    assert result.verdict == "conformant", result.failures


@pytest.mark.parametrize("convention", ["optax", "optax-decay-after"])
def test_optax_itself_gives_legal_values_away_from_subnormals(convention):
    """optax on JAX (examples/optax_sgd.py; skipped without optax): runs of moderate values are
    legal values of its convention, bit for bit (XLA on CPU flushes subnormals: neuron.md
    8.8)."""
    pytest.importorskip("optax")
    from neuronspec.cases.runs import draw_runs
    from reference.formats import get_format

    impl = load("examples/optax_sgd.py:step")
    spec = with_convention(parse_spec("momentum=0.875,weight_decay=0.0625,nesterov"),
                           convention)
    for fmt in ("bfloat16", "float32"):
        options = spec.for_format(fmt)
        for w0, b0, data in draw_runs(get_format(fmt), 7, 3, 4, 0):
            steps = list(impl.runner(w0, b0, data, dict(options), fmt))
            verdict = judge_run(fmt, w0, b0, data, reference_options(options), steps,
                                exact_level=True)
            assert verdict.ok and all(names for step in verdict.explained
                                      for names in step.values()), (fmt, w0, b0, data)
