"""The pytest plugin: the whole property suite against any implementation, in any repository.

Registered through the ``pytest11`` entry point and inert until one of its options names an
implementation (as hypothesis's own plugin is inert until used)::

    pytest --neuronspec-impl mypkg.mod:step [--neuronspec-dtype float32,float64]
           [--neuronspec-model ieee+ftz] [--neuronspec-profile ci]
    pytest --neuronspec-cmd "./my_program"          (a program speaking the JSON-lines protocol)
    pytest --neuronspec-impl mypkg.mod:step --neuronspec-options momentum=0.9,nesterov
                                                    (runs of SGD with options too)

Then the property suite (``neuronspec.suite``) is collected next to the repository's own tests:
every property, on hypothesis-generated cases from every regime, for every implementation and
format it supports, each failure with its standalone report and replay command.  The report
header echoes the implementations and settings.  ``--neuronspec-impl bundled`` means the
implementations bundled with neuronspec.
"""

from __future__ import annotations

import math

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest

__all__ = ["PROFILES", "SuiteSettings", "active", "hypothesis_profile", "register_profiles"]

#: hypothesis profiles, registered as ``neuronspec-<name>``.  dev: quick local runs; ci:
#: derandomized (reproducible), enough examples that each regime is drawn about a dozen times
#: per test (and hypothesis.target climbs toward the worst error/bound); ci-quick: ci's
#: reproducibility with dev's examples, for a CI job whose thorough check runs elsewhere (this
#: repository's self-test: ``make check`` checks the bundled implementations); thorough: a long
#: search.
PROFILES: dict[str, dict] = {
    "dev": {"max_examples": 50, "deadline": None},
    "ci": {"max_examples": 100, "deadline": None, "derandomize": True, "database": None},
    "ci-quick": {"max_examples": 50, "deadline": None, "derandomize": True, "database": None},
    "thorough": {"max_examples": 10_000, "deadline": None},
}


@dataclass
class SuiteSettings:
    """What the suite runs: implementations (loaded), formats, model and hypothesis profile."""

    implementations: list = field(default_factory=list)
    unavailable: dict = field(default_factory=dict)  # spec -> why it could not be loaded
    formats: list = field(default_factory=list)
    model: str = "ieee"
    profile: str = "dev"
    level: str = "exact"
    #: runs of SGD with options (``--neuronspec-run``/``--neuronspec-options``): the option
    #: sets (None: no run tests), runs per format and set, steps per run
    option_sets: Optional[list] = None
    runs: int = 6
    steps: int = 8
    buffer_format: Optional[str] = None  # the declared buffer format of the runs


_ACTIVE: Optional[SuiteSettings] = None


def active() -> Optional[SuiteSettings]:
    """The settings of the suite in this pytest process, or None when the plugin is inert."""
    return _ACTIVE


def register_profiles() -> None:
    """Register :data:`PROFILES`, each without hypothesis's explain phase: it replays a failing
    example under a line tracer to list the lines only failing runs reach, which took 5 of the
    6 s a failing property took (the finding's own report says what failed, and how)."""
    import hypothesis

    phases = [p for p in hypothesis.Phase if p is not hypothesis.Phase.explain]
    for name, options in PROFILES.items():
        hypothesis.settings.register_profile(f"neuronspec-{name}", **{"phases": phases,
                                                                       **options})


def default_profile() -> str:
    return os.environ.get("NEURONSPEC_PROFILE") or ("ci" if os.environ.get("CI") else "dev")


def hypothesis_profile(name: str) -> Any:
    import hypothesis

    register_profiles()
    return hypothesis.settings.get_profile(f"neuronspec-{name}")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("neuronspec", "neuronspec: the property suite of one gradient-descent "
                            "step (inert unless an implementation is named)")
    group.addoption("--neuronspec-impl", action="append", dest="neuronspec_impl", default=None,
                    metavar="IMPL", help="run the property suite against IMPL: module:callable, "
                    "path/to/file.py:callable, a bundled name, or 'bundled' for all of them; "
                    "repeatable")
    group.addoption("--neuronspec-cmd", action="append", dest="neuronspec_cmd", default=None,
                    metavar="COMMAND", help="run it against a program speaking the JSON-lines "
                    "protocol (spec/protocol.md); repeatable")
    group.addoption("--neuronspec-dtype", dest="neuronspec_dtype", default=None,
                    metavar="FORMATS", help="comma-separated formats (default: every format the "
                    "implementation supports)")
    group.addoption("--neuronspec-model", dest="neuronspec_model", default=None, metavar="MODEL",
                    help="tolerance model: ieee (default), strict, ieee+ftz, ieee+lr-binary64, "
                    "ieee+ftz+lr-binary64")
    group.addoption("--neuronspec-level", dest="neuronspec_level", default="exact",
                    choices=("bounded", "exact"), help="exact (default): every value must be, "
                    "bit for bit, what an evaluation the model admits gives; bounded: within "
                    "its derived bound")
    group.addoption("--neuronspec-timeout", dest="neuronspec_timeout", default=None,
                    type=float, metavar="SECONDS", help="seconds an implementation may take "
                    "per case (default 10); each runs supervised, in its own process")
    group.addoption("--neuronspec-run", dest="neuronspec_run", action="store_true",
                    default=False, help="check runs of SGD with options too (spec/neuron.md 8): "
                    "each step judged from the implementation's reported state")
    group.addoption("--neuronspec-options", action="append", dest="neuronspec_options",
                    default=None, metavar="SPEC", help="an option set of the runs, e.g. "
                    "momentum=0.9,nesterov (repeatable; implies --neuronspec-run)")
    group.addoption("--neuronspec-convention", dest="neuronspec_convention", default=None,
                    metavar="C", help="the declared convention of the runs: torch (default), "
                    "keras, optax or optax-decay-after (spec/neuron.md 8.6; implies "
                    "--neuronspec-run)")
    group.addoption("--neuronspec-runs", dest="neuronspec_runs", type=int, default=6,
                    metavar="N", help="runs per format and option set (default 6)")
    group.addoption("--neuronspec-steps", dest="neuronspec_steps", type=int, default=8,
                    metavar="K", help="steps per run (default 8)")
    group.addoption("--neuronspec-buffer-format", dest="neuronspec_buffer_format",
                    default=None, metavar="FORMAT", help="the declared format of the runs' "
                    "momentum buffers (default: the parameter format)")
    group.addoption("--neuronspec-profile", dest="neuronspec_profile", default=None,
                    choices=list(PROFILES), help="hypothesis profile (default: NEURONSPEC_PROFILE, "
                    "else ci when CI is set, else dev)")


def _specs(config: pytest.Config) -> list[str]:
    from .implementations import BUNDLED

    specs: list[str] = []
    for spec in config.getoption("neuronspec_impl") or []:
        specs += list(BUNDLED) if spec == "bundled" else [spec]
    return specs


def _settings(config: pytest.Config) -> Optional[SuiteSettings]:
    """The suite's settings from the options, or None (inert); a bad option is a UsageError."""
    specs = _specs(config)
    commands = config.getoption("neuronspec_cmd") or []
    if not specs and not commands:
        return None
    from reference.bounds import get_model
    from reference.formats import FORMATS

    from .errors import NeuronspecError
    from .implementations import BUNDLED, supervised
    from .implementations.load import target_of
    from .implementations.process import DEFAULT_TIMEOUT, ProcessImplementation

    dtypes = config.getoption("neuronspec_dtype")
    formats = [d.strip() for d in dtypes.split(",") if d.strip()] if dtypes else list(FORMATS)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise pytest.UsageError(f"--neuronspec-dtype: unknown format {bad[0] if bad else dtypes!r}"
                                f"; choose from {', '.join(FORMATS)}")
    try:
        model = get_model(config.getoption("neuronspec_model") or "ieee").name
    except ValueError as exc:
        raise pytest.UsageError(f"--neuronspec-model: {exc}") from None
    settings = SuiteSettings(formats=formats, model=model,
                             profile=config.getoption("neuronspec_profile") or default_profile(),
                             level=config.getoption("neuronspec_level") or "exact")
    specs_of_runs = config.getoption("neuronspec_options") or []
    convention = config.getoption("neuronspec_convention")
    if config.getoption("neuronspec_run") or specs_of_runs or convention:
        from .cases.options import declared_sets

        try:
            settings.option_sets = declared_sets(specs_of_runs, convention)
        except ValueError as exc:
            raise pytest.UsageError(str(exc).replace("--options", "--neuronspec-options")) \
                from None
        settings.buffer_format = config.getoption("neuronspec_buffer_format")
        if settings.buffer_format is not None and settings.buffer_format not in FORMATS:
            raise pytest.UsageError(f"--neuronspec-buffer-format: unknown format "
                                    f"{settings.buffer_format!r}; choose from "
                                    f"{', '.join(FORMATS)}")
        from .cases.options import check_sets

        try:  # (as the command line's check: a model the convention is not covered under too)
            check_sets(settings.option_sets, formats, model, settings.buffer_format)
        except ValueError as exc:
            raise pytest.UsageError(f"--neuronspec-options: {exc}") from None
        settings.runs = config.getoption("neuronspec_runs")
        settings.steps = config.getoption("neuronspec_steps")
        if settings.runs < 1 or settings.steps < 1:
            raise pytest.UsageError("--neuronspec-runs and --neuronspec-steps take a count >= 1")
    if settings.profile not in PROFILES:
        raise pytest.UsageError(f"NEURONSPEC_PROFILE={settings.profile!r}: choose one of "
                                f"{', '.join(PROFILES)}")
    timeout = config.getoption("neuronspec_timeout")
    timeout = DEFAULT_TIMEOUT if timeout is None else timeout
    if not (math.isfinite(timeout) and timeout > 0):
        raise pytest.UsageError(f"--neuronspec-timeout: {timeout!r} is not a positive number of "
                                "seconds")
    started = []
    controller = _xdist_controller(config)
    for spec in specs:  # started first, waited for after: they load at once (as check's)
        try:
            if controller and spec in BUNDLED:  # only the workers call it: named, not started
                settings.implementations.append(_Described(*target_of(spec)[1:]))
                continue
            started.append((spec, supervised(spec, timeout, wait=False,
                                             runs=settings.option_sets is not None)))
        except NeuronspecError as exc:
            _unavailable(settings, spec, exc)
    for spec, impl in started:
        try:
            impl.wait_ready()
        except NeuronspecError as exc:
            _unavailable(settings, spec, exc)
            continue
        settings.implementations.append(impl)
    for command in commands:
        try:
            settings.implementations.append(ProcessImplementation(
                command, timeout, runs=settings.option_sets is not None))
        except NeuronspecError as exc:
            raise pytest.UsageError(f"--neuronspec-cmd: {exc}") from None
    return settings


def _xdist_controller(config: pytest.Config) -> bool:
    """Whether this process is a pytest-xdist controller: it hands the tests out to workers,
    each of which starts the implementations for its own tests, and calls none itself."""
    option = config.option
    return (not hasattr(config, "workerinput") and getattr(option, "dist", "no") != "no"
            and bool(getattr(option, "tx", None)) and not getattr(option, "collectonly", False))


@dataclass(frozen=True)
class _Described:
    """A bundled implementation as an xdist controller knows it: for the report header, with
    what ``target_of`` says without importing it (as a started one's), never called.  Started
    there too, the bundled implementations cost about 2 s of CPU and 1 s before the workers
    began (pytest -n 2; torch imported twice more).  An implementation named otherwise is
    started there all the same, so that one that cannot load is a usage error before any
    worker starts."""

    name: str
    origin: str
    _version: str

    def version(self) -> str:
        return self._version


def _unavailable(settings: SuiteSettings, spec: str, exc: Exception) -> None:
    """A bundled implementation whose optional dependency is missing is skipped; any other
    that cannot be loaded is a usage error."""
    from .implementations import BUNDLED

    if spec not in BUNDLED:
        raise pytest.UsageError(f"--neuronspec-impl: {exc}") from None
    settings.unavailable[spec] = str(exc)


def pytest_configure(config: pytest.Config) -> None:
    global _ACTIVE
    _ACTIVE = _settings(config)
    if _ACTIVE is None:
        return
    suite = str(Path(__file__).with_name("suite.py"))
    if suite not in config.args:
        config.args.append(suite)


def pytest_unconfigure(config: pytest.Config) -> None:
    global _ACTIVE
    if _ACTIVE is not None:
        from .implementations.process import close_all

        close_all(_ACTIVE.implementations)
    _ACTIVE = None


def pytest_report_header(config: pytest.Config) -> "list[str] | None":
    settings = _ACTIVE
    if settings is None:
        return None
    import platform

    import hypothesis
    import mpmath
    import numpy

    from . import __version__

    profile = hypothesis_profile(settings.profile)
    lines = [f"neuronspec {__version__} property suite: model {settings.model}, level "
             f"{settings.level}, formats "
             f"{', '.join(settings.formats)}; numpy {numpy.__version__}, mpmath "
             f"{mpmath.__version__}, {_torch_line()}",
             f"hypothesis {hypothesis.__version__} profile neuronspec-{settings.profile}: "
             f"max_examples={profile.max_examples}, derandomize={profile.derandomize}; "
             f"{platform.machine()} {platform.python_implementation()} "
             f"{platform.python_version()}"]
    for impl in settings.implementations:
        lines.append(f"implementation under test: {impl.name} ({impl.origin}; {impl.version()})")
    for spec, why in settings.unavailable.items():
        lines.append(f"implementation not run: {spec} ({why})")
    return lines


def _torch_line() -> str:
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        return "torch not loaded"
    return (f"torch {torch.__version__} (cpu capability "
            f"{torch.backends.cpu.get_cpu_capability()})")
