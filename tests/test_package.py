"""Packaging promises: the reference and the tool import without torch; the command runs; bad
arguments get one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from neuronspec.cli import main

ROOT = Path(__file__).resolve().parents[1]

BLOCK_TORCH = (
    "import sys\n"
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'torch' or name.startswith('torch.'):\n"
    "            raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n"
    "sys.meta_path.insert(0, Block())\n"
)


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_core_imports_and_runs_without_torch():
    proc = run_python(
        "import reference, reference.batch, reference.judge, neuronspec, neuronspec.runs.example\n"
        "from neuronspec.cli import main\n"
        "assert 'torch' not in sys.modules\n"
        "main(['example'])\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert "torch_sgd: not run" in proc.stdout and "pip install 'neuronspec[torch]'" in proc.stdout
    assert "manual" in proc.stdout


def test_torch_blocker_works():
    """The test above can fail: with the blocker on, importing torch does fail."""
    proc = run_python("import torch\n")
    assert proc.returncode != 0 and "No module named 'torch'" in proc.stderr


def test_example_prints_the_seed_numbers(capsys):
    pytest.importorskip("torch")
    assert main(["example"]) == 0
    out = capsys.readouterr().out
    for number in ("-0.19999999999999996", "-0.09999999999999998", "0.52", "-0.09000000000000001",
                   "-0.20000004768371582", "-0.10000002384185791", "0.5199999809265137",
                   "-0.08999999612569809"):
        assert number in out, f"seed number {number} missing from the example table"
    assert max(len(line) for line in out.splitlines()) <= 100


@pytest.mark.parametrize("argv", [["example", "--dtype", "float8"], ["frobnicate"]])
def test_bad_arguments_give_one_clear_line(argv):
    proc = subprocess.run([sys.executable, "-m", "neuronspec", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "error:" in proc.stderr
