"""pytest configuration for neuronspec: hypothesis profiles, the implementations under test
(``--impl``, ``--dtype``) and a report header that echoes them."""

from __future__ import annotations

import os
import platform

import hypothesis
import pytest

# dev: quick local runs; ci: derandomized (reproducible), enough examples that each of the 8
# regimes of reference.strategies is drawn about a dozen times per test (and hypothesis.target
# climbs toward the worst error/bound); thorough: a long search, database on.
hypothesis.settings.register_profile("dev", max_examples=50, deadline=None)
hypothesis.settings.register_profile(
    "ci", max_examples=100, deadline=None, derandomize=True, database=None)
hypothesis.settings.register_profile("thorough", max_examples=10_000, deadline=None)
hypothesis.settings.load_profile(
    os.environ.get("NEURONSPEC_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


def pytest_addoption(parser):
    group = parser.getgroup("neuronspec")
    group.addoption("--impl", action="append", default=None, metavar="IMPL",
                    help="implementation under test: a bundled name (manual, numpy, "
                    "torch_autograd, torch_sgd), module:callable or path/to/file.py:callable; "
                    "repeatable; default: every bundled one (also NEURONSPEC_IMPL, "
                    "comma-separated)")
    group.addoption("--dtype", default=None, metavar="FORMATS",
                    help="comma-separated formats to check (default: every format the "
                    "implementation supports; also NEURONSPEC_DTYPE)")


def pytest_configure(config):
    from reference.formats import FORMATS

    specs = config.getoption("--impl") or [
        s for s in os.environ.get("NEURONSPEC_IMPL", "").split(",") if s.strip()]
    dtypes = config.getoption("--dtype") or os.environ.get("NEURONSPEC_DTYPE")
    formats = [d.strip() for d in dtypes.split(",")] if dtypes else list(FORMATS)
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise pytest.UsageError(f"--dtype: unknown format {bad[0]!r}; choose from "
                                f"{', '.join(FORMATS)}")
    config.neuronspec_impls = specs or None  # None: the bundled implementations
    config.neuronspec_formats = formats
    if specs:
        from reference.impls import LoadError, load

        for spec in specs:
            try:
                load(spec)
            except LoadError as exc:
                raise pytest.UsageError(f"--impl: {exc}") from None


def pytest_report_header(config):
    import mpmath
    import numpy

    import reference

    try:
        import torch

        torch_line = f"torch {torch.__version__} (cpu capability {torch.backends.cpu.get_cpu_capability()})"
    except ModuleNotFoundError:
        torch_line = "torch not installed (torch implementations are skipped)"
    settings = hypothesis.settings.default
    lines = [
        f"neuronspec {reference.__version__}; numpy {numpy.__version__}; mpmath {mpmath.__version__}; "
        f"{torch_line}",
        f"hypothesis {hypothesis.__version__} profile {settings._current_profile}: "
        f"max_examples={settings.max_examples}, derandomize={settings.derandomize}; "
        f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}",
    ]
    specs = getattr(config, "neuronspec_impls", None)
    if specs:
        from reference.impls import load

        for spec in specs:
            impl = load(spec)
            lines.append(f"implementation under test: {impl.name} ({impl.origin}; {impl.version()})")
    else:
        lines.append("implementations under test: the bundled ones (manual, numpy, "
                     "torch_autograd, torch_sgd)")
    lines.append(f"formats: {', '.join(getattr(config, 'neuronspec_formats', []))}")
    return lines
