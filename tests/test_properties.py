"""The property suite: every bundled implementation, every format it supports, every quantity,
on hypothesis-generated cases from every hard regime (reference.strategies)."""

from __future__ import annotations

import functools

import hypothesis
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from reference.bounds import OutOfDomain, case_bounds
from reference.bundled import BUNDLED
from reference.impls import LoadError, load
from reference.properties import PROPERTIES
from reference.strategies import cases


@functools.lru_cache(maxsize=None)
def implementation(name: str):
    try:
        return load(name)
    except LoadError as exc:
        pytest.skip(str(exc))


def supported(name: str, fmt: str) -> bool:
    try:
        impl = load(name)
    except LoadError:
        return True  # reported as a skip with its reason
    try:
        impl(fmt, (1.0, 0.0, 1.0, 0.0, 0.0))
    except NotImplementedError:
        return False
    return True


def pytest_generate_tests(metafunc):
    if "name" in metafunc.fixturenames and "fmt" in metafunc.fixturenames:
        config = metafunc.config
        names = config.neuronspec_impls or list(BUNDLED)
        pairs = [(n, f) for n in names for f in config.neuronspec_formats if supported(n, f)]
        metafunc.parametrize("name,fmt", pairs, ids=[f"{load_name(n)}-{f}" for n, f in pairs])


def load_name(spec: str) -> str:
    try:
        return load(spec).name
    except LoadError:
        return spec


def in_domain(fmt: str, case: tuple) -> bool:
    b = case_bounds(fmt, dict(zip("w b x t lr".split(), case)))
    return any(not isinstance(v, OutOfDomain) for v in b.values())


@pytest.mark.parametrize("prop", list(PROPERTIES))
@given(data=st.data())
def test_property(name, fmt, prop, data):
    impl = implementation(name)
    labelled = data.draw(cases(fmt), label="(regime, (w, b, x, t, lr))")
    assume(in_domain(fmt, labelled[1]))
    if prop == "within-bounds":
        PROPERTIES[prop](impl, fmt, labelled, target=hypothesis.target)
    else:
        PROPERTIES[prop](impl, fmt, labelled)
