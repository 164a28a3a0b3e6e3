"""The property suite as pytest tests, collected by the neuronspec pytest plugin (``plugin``):
every property (``neuronspec.properties``; the exact level too, unless ``--neuronspec-level
bounded``) for every implementation under test and every format it supports, on
hypothesis-generated cases from every regime (``neuronspec.cases``).

Each test draws cases with the plugin's hypothesis profile, skips cases where no quantity is in
the bounded domain, and fails with the finding's standalone report, which ends with the
``neuronspec replay`` command that reproduces it alone."""

from __future__ import annotations

import hypothesis
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from neuronspec.cases.strategies import cases
from neuronspec.plugin import active, hypothesis_profile
from neuronspec.properties import ALL_PROPERTIES, PROPERTIES, in_domain, supported

_SETTINGS = active()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "implementation" not in metafunc.fixturenames:
        return
    settings = active()
    pairs, ids = [], []
    if settings is not None:
        for impl in settings.implementations:
            for fmt in settings.formats:
                if supported(impl, fmt)[0]:
                    pairs.append((impl, fmt))
                    ids.append(f"{impl.name}-{fmt}")
    metafunc.parametrize("implementation,fmt", pairs, ids=ids)


_NAMES = list(PROPERTIES) + (["exact-level"] if _SETTINGS is None or _SETTINGS.level == "exact"
                             else [])


@pytest.mark.parametrize("prop", _NAMES)
@hypothesis.settings(hypothesis_profile(_SETTINGS.profile if _SETTINGS else "dev"))
@given(data=st.data())
def test_property(implementation, fmt: str, prop: str, data: st.DataObject) -> None:
    model = active().model
    labelled = data.draw(cases(fmt), label="(regime, (w, b, x, t, lr))")
    assume(in_domain(fmt, labelled[1], model))
    if prop in ("within-bounds", "exact-level"):
        ALL_PROPERTIES[prop](implementation, fmt, labelled, model, target=hypothesis.target)
    else:
        ALL_PROPERTIES[prop](implementation, fmt, labelled, model)


def _run_cases() -> tuple[list, list]:
    settings = active()
    cases, ids = [], []
    if settings is not None and settings.option_sets is not None:
        for impl in settings.implementations:
            for fmt in settings.formats:
                for option_set in settings.option_sets:
                    cases.append((impl, fmt, option_set))
                    ids.append(f"{impl.name}-{fmt}-{option_set.spec() or 'no-options'}")
    return cases, ids


_RUNS, _RUN_IDS = _run_cases()


@pytest.mark.parametrize("runner,run_format,option_set", _RUNS, ids=_RUN_IDS)
def test_runs(runner, run_format: str, option_set) -> None:
    """Runs of SGD with options (spec/neuron.md 8): each step judged against the exact step
    from the state the implementation reported; a failure shows the first failing step, the
    state it was judged from and the command that replays the run."""
    from neuronspec.runs.sgd import check_runs, format_runs

    settings = active()
    (result,) = check_runs(runner, [run_format], [option_set], runs=settings.runs,
                           steps=settings.steps, model=settings.model,
                           buffer_format=settings.buffer_format, level=settings.level)
    if result.unsupported:
        pytest.skip(f"{runner.name} does not support {run_format} runs with "
                    f"{option_set.spec() or 'no options'}: {result.unsupported}")
    if result.verdict != "conformant":
        pytest.fail("\n".join(format_runs([result.as_dict()], runner.name)), pytrace=False)


if not _RUNS:  # no runs asked for (--neuronspec-run, --neuronspec-options): no such test
    del test_runs
