"""pytest configuration for neuronspec: hypothesis profiles and the report header."""

from __future__ import annotations

import os
import platform

import hypothesis
from hypothesis import HealthCheck

hypothesis.settings.register_profile("dev", max_examples=50, deadline=None)
hypothesis.settings.register_profile(
    "ci", max_examples=200, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
hypothesis.settings.register_profile("thorough", max_examples=10_000, deadline=None)
hypothesis.settings.load_profile(
    os.environ.get("NEURONSPEC_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


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
    return [
        f"neuronspec {reference.__version__}; numpy {numpy.__version__}; mpmath {mpmath.__version__}; "
        f"{torch_line}",
        f"hypothesis {hypothesis.__version__} profile {settings._current_profile}: "
        f"max_examples={settings.max_examples}, derandomize={settings.derandomize}; "
        f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}",
    ]
