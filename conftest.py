"""pytest configuration of this repository: its own tests use the neuronspec pytest plugin
(``neuronspec.plugin``) as any repository would, with two conveniences -- ``--impl`` and
``--dtype`` are aliases of ``--neuronspec-impl`` and ``--neuronspec-dtype``, and with no
implementation named the suite runs against the bundled ones -- and the plugin's hypothesis
profile applies to every test here."""

from __future__ import annotations

import os

import hypothesis
import pytest

from neuronspec.implementations.bundled import BUNDLED
from neuronspec.plugin import default_profile, register_profiles
from neuronspec.runs.check import VALIDATE

#: What a whole run of this suite checks by default: the bundled implementations but torch's
#: SGD paths (for-loop, foreach, fused), whose plain step is a run of one step through
#: torch.optim.SGD (a few ms an example) checked by tests/test_run_impls.py and
#: tests/test_check.py (checks with fewer examples, and the bit-exact fingerprint) and whose
#: runs by the run tests -- the whole property suite on them too would take the default run
#: past its time budget (`pytest --impl torch_sgd` runs it).
SELF_TEST_IMPLS = [name for name in BUNDLED if not name.startswith("torch_sgd")]

register_profiles()
# This repository's own run under CI: the ci profile's reproducibility with dev's 50 examples
# (ci-quick), not ci's 100, which doubled the property tests' share of the CI budget; the bundled
# implementations' thorough check is `make check` (vectors, examples, a 100,000-case sweep
# phase).  NEURONSPEC_PROFILE or --neuronspec-profile still choose any profile.
SELF_TEST_PROFILE = ("ci-quick" if default_profile() == "ci"
                     and not os.environ.get("NEURONSPEC_PROFILE") else default_profile())
hypothesis.settings.load_profile(f"neuronspec-{SELF_TEST_PROFILE}")

# every check report the suite writes, in-process or from the CLI (subprocesses inherit it), is
# validated against spec/schemas/report.schema.json first
os.environ.setdefault(VALIDATE, "1")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("neuronspec")
    group.addoption("--impl", action="append", dest="neuronspec_impl", default=None,
                    metavar="IMPL", help="alias of --neuronspec-impl (also NEURONSPEC_IMPL, "
                    "comma-separated); default here: the bundled implementations")
    group.addoption("--dtype", dest="neuronspec_dtype", default=None, metavar="FORMATS",
                    help="alias of --neuronspec-dtype (also NEURONSPEC_DTYPE)")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Before the plugin reads its options: a run of the whole test suite (no paths given)
    checks the bundled implementations unless told otherwise; a run of some test files checks
    only what it names."""
    whole = config.args_source != pytest.Config.ArgsSource.ARGS
    if whole and not config.getoption("neuronspec_impl") \
            and not config.getoption("neuronspec_cmd"):
        named = [s.strip() for s in os.environ.get("NEURONSPEC_IMPL", "").split(",")
                 if s.strip()]
        config.option.neuronspec_impl = named or SELF_TEST_IMPLS
    if not config.getoption("neuronspec_profile"):
        config.option.neuronspec_profile = SELF_TEST_PROFILE
    if not config.getoption("neuronspec_dtype") and os.environ.get("NEURONSPEC_DTYPE"):
        config.option.neuronspec_dtype = os.environ["NEURONSPEC_DTYPE"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``early`` first: pytest-xdist hands tests out in this order, and the longest
    one, started last, kept one worker busy while the other had finished."""
    items.sort(key=lambda item: item.get_closest_marker("early") is None)
