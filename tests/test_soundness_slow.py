"""The million-case soundness run, behind the `slow` marker (`pytest -m slow`).

Equivalent to `neuronspec soundness`; set NEURONSPEC_SOUNDNESS_CASES to run fewer cases.
"""

from __future__ import annotations

import os

import pytest

from neuronspec.runs.soundness import soundness_report

CASES = int(os.environ.get("NEURONSPEC_SOUNDNESS_CASES", "1000002"))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["float16", "bfloat16", "float32", "float64"])
def test_million_case_soundness(fmt):
    report = soundness_report([fmt], CASES, seed=20261126, workers=os.cpu_count() or 1,
                              torch_cases={fmt: CASES if fmt == "float32" else CASES // 10})
    f = report["formats"][fmt]
    bad = {(s, q): st["first_violations"][:1] for s, qs in f["subjects"].items()
           for q, st in qs.items() if st["violations"]}
    assert not bad, f"{fmt}: violations {bad}"
    assert not f["errors"], f["errors"][:3]
