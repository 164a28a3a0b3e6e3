"""Settings for the whole self-test run (its subprocesses inherit them)."""

import os

# every check report the suite writes, in-process or from the CLI, is validated against
# spec/schemas/report.schema.json before it is returned (neuronspec.runs.check.VALIDATE)
os.environ.setdefault("NEURONSPEC_VALIDATE_REPORTS", "1")
