"""spec/protocol.md R4's step_from_batch: the bundled implementations' batch forms give their
one-step forms' values, the loader checks what they return, and the steps drawn for sweeps of
runs are those of the soundness measurement's distribution, with one lr per block."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neuronspec.cases.options import DEFAULT_SETS, default_sets
from neuronspec.cases.regimes import LR_BLOCK
from neuronspec.cases.runs import STEP_REGIMES, draw_step_arrays
from neuronspec.errors import ImplementationError
from neuronspec.implementations.load import load
from reference.formats import get_format


def _same(a, b) -> bool:
    """The same value bit for bit up to NaN payloads (a zero's sign included)."""
    return (a == b and math.copysign(1.0, a) == math.copysign(1.0, b)) or \
        (np.isnan(a) and np.isnan(b))


@pytest.mark.parametrize("name,fmt", [("numpy", "float32"), ("numpy", "float16"),
                                      ("torch_sgd", "float32"), ("torch_sgd_foreach", "float32")])
def test_step_from_batch_is_step_from_on_each_element(name, fmt):
    """(torch in float16 differs: its kernels on tensors of more than one element keep float32
    work across operations, which on 0-dim tensors they round each time; both are legal
    evaluations, as the sweep of steps of runs shows.)"""
    if name.startswith("torch"):
        pytest.importorskip("torch")
    impl = load(name)
    for index, option_set in ((0, DEFAULT_SETS[-1]), (1, DEFAULT_SETS[-1]),
                              (1, DEFAULT_SETS[2])):
        options = option_set.for_format(fmt)
        cols, later, _ = draw_step_arrays(get_format(fmt), options, 3, index, 2 * LR_BLOCK + 5)
        assert later == (index % 2 == 1 and options["momentum"] != 0)
        out = impl.steps_from_batch(fmt, cols, options)
        for j in range(0, len(cols["w"]), 41):
            state = {k: None if cols[k] is None else float(cols[k][j])
                     for k in ("w", "b", "buf_w", "buf_b")}
            one = impl.step_from_state(fmt, state, *(float(cols[k][j]) for k in "xt"),
                                       float(cols["lr"][j]), options)
            for q, v in one.items():
                assert (v is None) == (out[q] is None), q
                assert v is None or _same(v, out[q][j]), (q, j, v, out[q][j])


@pytest.mark.parametrize("convention", ["keras", "optax", "optax-decay-after"])
def test_numpys_batch_forms_of_the_conventions_are_its_one_step_forms(convention):
    """numpy's keras and optax forms on arrays (first steps from the zero state, later ones
    from drawn states): the values of step_from, element by element."""
    impl = load("numpy")
    for index in (0, 1):
        options = default_sets(convention)[-1].for_format("float16")
        cols, later, _ = draw_step_arrays(get_format("float16"), options, 3, index, 300)
        assert later == (index == 1)
        out = impl.steps_from_batch("float16", cols, options)
        for j in range(0, 300, 7):
            state = {k: None if cols[k] is None else float(cols[k][j])
                     for k in ("w", "b", "buf_w", "buf_b")}
            one = impl.step_from_state("float16", state, *(float(cols[k][j]) for k in "xt"),
                                       float(cols["lr"][j]), options)
            for q, v in one.items():
                assert v is None or _same(v, out[q][j]), (q, j, v, out[q][j])


def test_the_drawn_steps_are_seeded_with_one_lr_per_block():
    fmt = get_format("float32")
    options = DEFAULT_SETS[-1].for_format(fmt)
    a, _, slices = draw_step_arrays(fmt, options, 5, 3, 5000)
    b, _, _ = draw_step_arrays(fmt, options, 5, 3, 5000)
    c, _, _ = draw_step_arrays(fmt, options, 5, 4, 5000)
    assert all(np.array_equal(a[k], b[k]) for k in ("w", "x", "lr", "buf_w"))
    assert not np.array_equal(a["w"], c["w"]) and c["buf_w"] is None  # (an even chunk: first)
    assert [r for r, _, _ in slices] == list(STEP_REGIMES)
    for _, start, stop in slices:
        lr = a["lr"][start:stop]
        assert len(np.unique(lr[:LR_BLOCK])) == 1 and len(np.unique(lr)) > 1


def test_a_step_from_batch_that_returns_garbage_fails_in_one_line(tmp_path):
    impl = tmp_path / "garbage.py"
    impl.write_text(
        "import numpy as np\n"
        "from neuronspec.implementations.bundled.numpy_scalar import step, step_from\n"
        "def step_from_batch(w, b, buf_w, buf_b, x, t, lr, options, dtype):\n"
        "    return {'y': np.zeros(3)}\n")
    loaded = load(f"{impl}:step")
    options = DEFAULT_SETS[0].for_format("float32")
    cols, _, _ = draw_step_arrays(get_format("float32"), options, 1, 0, 10)
    with pytest.raises(ImplementationError, match="returned no loss"):
        loaded.steps_from_batch("float32", cols, options)


def test_runs_one_by_one_refuse_a_buffer_for_one_parameter_only(tmp_path):
    """Without step_run_batch, runs go through step_run run by run: a momentum buffer reported
    for w alone is the implementation's failure (as from the batch form), never steps left
    unjudged."""
    impl = tmp_path / "half_buffer.py"
    impl.write_text(
        "from neuronspec.implementations.bundled.numpy_scalar import step, step_run as _run\n"
        "def step_run(w0, b0, data, options, dtype):\n"
        "    for out in _run(w0, b0, data, options, dtype):\n"
        "        yield dict(out, buf_b=None)\n")
    loaded = load(f"{impl}:step")
    options = DEFAULT_SETS[-1].for_format(get_format("float32"))
    data = {k: np.full((3, 2), v) for k, v in (("x", 0.5), ("t", 1.0), ("lr", 0.125))}
    with pytest.raises(ImplementationError, match="one parameter only"):
        loaded.runs_batch("float32", np.ones(2), np.zeros(2), data, options)


def test_numpy_step_run_batch_is_its_runs():
    """R4's step_run_batch of the bundled numpy: column j is the run step_run gives for it."""
    from neuronspec.cases.runs import draw_runs
    from neuronspec.implementations.bundled import numpy_scalar

    fmt = get_format("float32")
    options = DEFAULT_SETS[-1].for_format(fmt)
    runs = draw_runs(fmt, 4, 6, 5, 0)
    w0, b0 = (np.array([r[i] for r in runs]) for i in (0, 1))
    x, t, lr = (np.array([[r[2][k][i] for r in runs] for k in range(5)]) for i in range(3))
    out = numpy_scalar.step_run_batch(w0, b0, x, t, lr, options, "float32")
    for j, (a, b, data) in enumerate(runs):
        for k, one in enumerate(numpy_scalar.step_run(a, b, data, options, "float32")):
            for q, v in one.items():
                assert _same(float(v), float(out[q][k, j])), (q, k, j)
