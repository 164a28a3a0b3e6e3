"""Exhaustive sweeps' cases: every finite value of a 16-bit format once, in a fixed order; chunks
that tile the cases exactly, deterministically; the grids; one clear line on every bad option."""

from __future__ import annotations

import hashlib
import itertools
import math
import pickle

import numpy as np
import pytest

from reference.formats import BFLOAT16, FLOAT16, FLOAT32, FLOAT64, float_hex
from reference.step import INPUTS
from neuronspec.cases import exhaustive
from neuronspec.cases.exhaustive import GRIDS, Exhaustive, finite_values
from neuronspec.errors import UsageError

COUNTS = {"float16": 63_488, "bfloat16": 65_280}


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64).view(np.uint64)


@pytest.mark.parametrize("fmt", [FLOAT16, BFLOAT16], ids=lambda f: f.name)
def test_every_finite_value_once_in_ascending_order(fmt):
    v = finite_values(fmt)
    half = len(v) // 2
    assert len(v) == COUNTS[fmt.name] and v.dtype == np.float64
    assert np.isfinite(v).all()
    assert len(np.unique(_bits(v))) == len(v)  # by encoding: -0 and +0 are two values
    assert all(fmt.contains(float(x)) for x in v)
    # ascending, -0 just before +0 (the one place where neighbours compare equal)
    assert (np.diff(v) > 0).sum() == len(v) - 2
    assert math.copysign(1, v[half - 1]) < 0 == v[half - 1] and v[half] == 0
    assert math.copysign(1, v[half]) > 0
    assert v[0] == -fmt.largest_finite and v[-1] == fmt.largest_finite
    assert v[half + 1] == fmt.smallest_subnormal and v[half - 2] == -fmt.smallest_subnormal
    subnormal = (v != 0) & (np.abs(v) < fmt.smallest_normal)
    assert subnormal.sum() == 2 * ((1 << (fmt.p - 1)) - 1)
    assert np.array_equal(v[:half][::-1], -v[half:])  # symmetric, signs included


def test_the_values_are_the_formats_encodings():
    """Checked against numpy's float16 and bfloat16 as the top half of a float32."""
    v = finite_values(FLOAT16)
    positive = np.arange(0x7C00, dtype=np.uint16).view(np.float16).astype(np.float64)
    assert np.array_equal(_bits(v[len(v) // 2:]), _bits(positive))
    negative = (np.arange(0x7C00, dtype=np.uint16) | 0x8000).view(np.float16).astype(np.float64)
    assert np.array_equal(_bits(v[:len(v) // 2][::-1]), _bits(negative))
    v = finite_values(BFLOAT16)
    positive = (np.arange(0x7F80, dtype=np.uint32) << 16).view(np.float32).astype(np.float64)
    assert np.array_equal(_bits(v[len(v) // 2:]), _bits(positive))


def test_the_value_table_is_shared_and_read_only():
    assert finite_values(FLOAT16) is finite_values(FLOAT16)
    with pytest.raises(ValueError):
        finite_values(FLOAT16)[0] = 1.0


@pytest.mark.parametrize("fmt", [FLOAT32, FLOAT64, "float32"], ids=str)
def test_wide_formats_are_refused(fmt):
    for make in (lambda: finite_values(fmt), lambda: Exhaustive(fmt, ("w", "x")),
                 lambda: Exhaustive.parse(fmt, "w,x", None, None)):
        with pytest.raises(UsageError) as exc:
            make()
        assert "\n" not in str(exc.value) and "float16 or bfloat16" in str(exc.value)


def test_grids_are_exact_in_both_formats_and_small_starts_with_the_default():
    assert 1 <= len(GRIDS["small"]) <= 8 and len(GRIDS["default"]) == 1
    for points in GRIDS.values():
        for point in points:
            assert set(point) == set(INPUTS)
            for text in point.values():
                value = float.fromhex(text)
                assert FLOAT16.contains(value) and BFLOAT16.contains(value), text
                assert float_hex(value) == text  # the spelling records and labels use
    assert GRIDS["small"][0] == GRIDS["default"][0]
    assert len({tuple(p.items()) for p in GRIDS["small"]}) == len(GRIDS["small"])


def test_cases_pairs_and_points():
    e = Exhaustive(FLOAT16, ("w", "x"))
    assert (e.count, e.pairs, e.cases) == (63_488, 63_488**2, 63_488**2)
    assert e.over == ("w", "x") and e.others == ("b", "t", "lr")
    assert e.points == ((0.0, 1.0, float.fromhex("0x1.9ap-4")),)
    s = Exhaustive(BFLOAT16, ("w", "x"), grid="small")
    assert s.cases == 8 * 65_280**2 and len(set(s.labels)) == 8
    # the pair in INPUTS order; points that become equal once the swept inputs go are kept once
    bt = Exhaustive(FLOAT16, ("t", "b"), grid="small")
    assert bt.over == ("b", "t") and bt.others == ("w", "x", "lr") and len(bt.points) == 2
    fixed = Exhaustive(FLOAT16, ("w", "x"), {"lr": 0.5}, grid="small")
    assert len(fixed.points) == 4 and all(p[2] == 0.5 for p in fixed.points)
    assert Exhaustive(FLOAT16, ("w", "x"), {"b": -0.0}, grid="small").points[0][0] == 0.0
    assert math.copysign(1, Exhaustive(FLOAT16, ("w", "x"), {"b": -0.0}).points[0][0]) < 0


def _expected(table, points, over, others, k):
    """Case ``k`` computed directly from its index (the documented order)."""
    v = len(table)
    g, i, j = k // (v * v), (k // v) % v, k % v
    cols = {over[0]: table[i], over[1]: table[j]}
    for m, name in enumerate(others):
        cols[name] = np.array([points[int(p)][m] for p in np.atleast_1d(g)])
    return cols


def _concat(e: Exhaustive, n: int):
    parts, slices, offset = [], [], 0
    for index in range(-(-e.cases // n)):
        cols, sl = e.chunk(index, n)
        size = len(cols["w"])
        assert size == min(n, e.cases - index * n) and size
        assert sl[0][1] == 0 and sl[-1][2] == size
        assert all(a[2] == b[1] for a, b in zip(sl, sl[1:]))  # contiguous
        slices += [(label, a + offset, b + offset) for label, a, b in sl]
        parts.append(cols)
        offset += size
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, slices


@pytest.mark.parametrize("over", [("w", "x"), ("b", "lr")])
@pytest.mark.parametrize("n", [1, 3, 7, 24, 25, 26, 199, 200, 1000])
def test_chunks_tile_every_case_exactly_once(monkeypatch, over, n):
    """On a table of 5 values (so that all the cases can be listed): the chunks, end to end,
    are the cases in their documented order, and the slices name each case's grid point."""
    table = np.array([-2.0, -0.0, 0.0, 0.5, 3.0])
    monkeypatch.setattr(exhaustive, "finite_values", lambda fmt: table)
    e = Exhaustive(FLOAT16, over, grid="small")
    assert e.cases == len(e.points) * 25 and len(e.points) == (8 if over == ("w", "x") else 2)
    cols, slices = _concat(e, n)
    assert list(cols) == list(INPUTS)
    want = {name: [] for name in INPUTS}
    for point, a, b in itertools.product(e.points, table, table):
        row = dict(zip(e.others, point)) | {over[0]: a, over[1]: b}
        for name in INPUTS:
            want[name].append(row[name])
    for name in INPUTS:
        assert np.array_equal(_bits(cols[name]), _bits(np.array(want[name]))), name
    # each grid point's cases under its own label, in order (a point may span chunks)
    merged: list[list] = []
    for label, a, b in slices:
        if merged and merged[-1][0] == label and merged[-1][2] == a:
            merged[-1][2] = b
        else:
            merged.append([label, a, b])
    assert merged == [[label, 25 * g, 25 * g + 25] for g, label in enumerate(e.labels)]
    assert len(merged) == len(e.points)
    assert e.chunk(-(-e.cases // n), n)[1] == []  # past the end: empty
    assert len(e.chunk(-(-e.cases // n), n)[0]["x"]) == 0


@pytest.mark.parametrize("fmt,grid,over,n,index", [
    (FLOAT16, "default", ("w", "x"), 1 << 12, 0),  # the first
    (FLOAT16, "default", ("w", "x"), 1 << 12, 63_488**2 // (1 << 12) - 1),  # the last
    (FLOAT16, "default", ("x", "t"), 100_003, 40_301),  # the last, clipped
    (BFLOAT16, "small", ("w", "x"), 1_000_003, 65_280**2 // 1_000_003),  # crosses points 0-1
    (BFLOAT16, "small", ("w", "x"), 1_000_003, 7 * 65_280**2 // 1_000_003),  # crosses 6-7
    (BFLOAT16, "small", ("b", "lr"), 50_000, 100_000),  # point 1 of 2
    (FLOAT16, "small", ("w", "x"), 65_537, 123_457),
])
def test_a_chunk_is_its_cases_by_index(fmt, grid, over, n, index):
    e = Exhaustive(fmt, over, grid=grid)
    cols, slices = e.chunk(index, n)
    k = np.arange(index * n, min(index * n + n, e.cases))
    assert len(k) and len(cols["w"]) == len(k)
    want = _expected(e.values, e.points, e.over, e.others, k)
    for name in INPUTS:
        assert np.array_equal(_bits(cols[name]), _bits(np.broadcast_to(want[name], k.shape)))
    points = k // e.pairs
    assert [s[0] for s in slices] == [e.labels[g] for g in np.unique(points)]
    for label, a, b in slices:
        assert (points[a:b] == e.labels.index(label)).all()
    if index * n // e.pairs != (index * n + n - 1) // e.pairs:
        assert len(slices) == 2


def test_chunks_are_deterministic_and_survive_pickling():
    e = Exhaustive(BFLOAT16, ("w", "x"), {"t": 2.0}, grid="small")
    blob = pickle.dumps(e)
    assert len(blob) < 2000  # shipped with every chunk task: no value table in it
    twin = pickle.loads(blob)
    a, sa = e.chunk(12_345, 9_999)
    b, sb = twin.chunk(12_345, 9_999)
    c, _ = e.chunk(12_345, 9_999)
    assert sa == sb and all(np.array_equal(_bits(a[k]), _bits(b[k])) for k in INPUTS)
    assert all(np.array_equal(_bits(a[k]), _bits(c[k])) for k in INPUTS)
    assert twin.describe() == e.describe()


#: sha256 of float16's default sweep's first and last chunks of 4096 cases (columns, slices).
DIGEST = "881348a20abced7e9f6e8c068af8c5c42e79c7f228c5f7ddaefc91ec14224500"


def test_the_order_is_fixed_forever():
    """A digest of the first and the last chunk: it changes if the order of the values, of the
    pairs or of the grid, or the default point, ever does (and every recorded chunk with it)."""
    e = Exhaustive(FLOAT16, ("w", "x"))
    h = hashlib.sha256()
    for index in (0, -(-e.cases // 4096) - 1):
        cols, slices = e.chunk(index, 4096)
        for name in INPUTS:
            h.update(cols[name].tobytes())
        h.update(repr(slices).encode())
    assert h.hexdigest() == DIGEST



def test_describe():
    e = Exhaustive.parse("float16", "x,w", "lr=0x1p-4", None)
    assert e.describe() == {
        "exhaustive": ["w", "x"], "format": "float16",
        "order": "grid point, then w, then x; values ascending, -0 before +0",
        "values": 63_488, "pairs": 63_488**2, "cases": 63_488**2, "grid": "default",
        "fixed": {"lr": "0x1p-4"}, "points": [{"b": "0x0p+0", "t": "0x1p+0", "lr": "0x1p-4"}]}
    assert e.label == "exhaustive over (w, x)"
    assert e.labels == ("b=0x0p+0,t=0x1p+0,lr=0x1p-4",)
    s = Exhaustive.parse("bfloat16", "w,x", None, "small").describe()
    assert s["cases"] == 8 * 65_280**2 and len(s["points"]) == 8 and s["fixed"] == {}
    assert s["points"][7] == {"b": "-0x1.9ap-4", "t": "0x1.f4p+9", "lr": "0x1p+0"}


def test_parse():
    e = Exhaustive.parse(FLOAT16, " x , w ", "b=-0, t = 0.5,lr=0x1.998p-4", "small")
    assert e.over == ("w", "x") and e.grid == "small" and len(e.points) == 1
    b, t, lr = e.points[0]
    assert math.copysign(1, b) < 0 and b == 0 and t == 0.5 and lr == FLOAT16.parse("0.1")
    assert Exhaustive.parse(BFLOAT16, "w,x", "lr=0.10009765625", None).points[0][2] == \
        float.fromhex("0x1.9ap-4")
    assert Exhaustive.parse(FLOAT16, "w,x", "t=65504,b=-0x1p-24", None).points[0][:2] == \
        (-FLOAT16.smallest_subnormal, 65504.0)
    assert Exhaustive.parse(FLOAT16, "w,x", "", None).describe()["fixed"] == {}


@pytest.mark.parametrize("fmt,over,fix,grid,says", [
    ("float16", "w", None, None, "1 inputs given; name two different inputs of w, b, x, t, lr"),
    ("float16", "w,x,b", None, None, "3 inputs given"),
    ("float16", "w,w", None, None, "w is named twice"),
    ("float16", "w,q", None, None, "'q' is not an input"),
    ("float16", "", None, None, "'' is not an input"),
    ("float16", "w,x", "b", None, "--fix: 'b' is not NAME=VALUE"),
    ("float16", "w,x", "b=", None, "--fix: 'b=' is not NAME=VALUE"),
    ("float16", "w,x", "=1", None, "is not NAME=VALUE"),
    ("float16", "w,x", "q=1", None, "--fix: 'q' is not an input; fix some of b, t, lr"),
    ("float16", "w,x", "x=1", None, "--fix: x is swept by --exhaustive w,x; fix only b, t, lr"),
    ("float16", "w,x", "b=1,b=2", None, "--fix: b is given twice"),
    ("float16", "w,x", "lr=0.1", None, "--fix: lr = '0.1' is not a float16 value; the nearest "
     "are 0x1.998p-4 (0.0999755859375) and 0x1.99cp-4 (0.10003662109375): give one of them"),
    ("bfloat16", "w,x", "lr=0.1", None, "is not a bfloat16 value; the nearest are 0x1.98p-4"),
    ("float16", "w,x", "t=1e6", None, "--fix: t = '1e6' is beyond float16's range"),
    ("float16", "w,x", "t=65505", None, "not a float16 value; the nearest is 0x1.ffcp+15 (65504): give it"),
    ("float16", "w,x", "t=1e-30", None, "nearest are 0x0p+0 (0) and 0x1p-24"),
    ("float16", "w,x", "t=inf", None, "--fix: t: 'inf' is not a decimal or hex number"),
    ("float16", "w,x", "t=nan", None, "--fix: t: 'nan' is not a decimal"),
    ("float16", "w,x", "t=1e999999999999", None, "--fix: t: "),
    ("float16", "w,x", None, "huge", "--grid: unknown grid 'huge'; choose one of default, small"),
    ("float64", "w,x", None, None, "float64 has 18,437,736,874,454,810,624 finite values"),
    ("float8", "w,x", None, None, "--dtype: unknown format 'float8'"),
])
def test_every_mistake_is_one_line(fmt, over, fix, grid, says):
    with pytest.raises(UsageError) as exc:
        Exhaustive.parse(fmt, over, fix, grid)
    text = str(exc.value)
    assert "\n" not in text and says in text, text


def test_the_constructor_checks_what_it_is_given():
    with pytest.raises(UsageError, match=r"lr = 0.1 is not a float16 value; the nearest"):
        Exhaustive(FLOAT16, ("w", "x"), {"lr": 0.1})
    with pytest.raises(UsageError, match="not a finite float16 value"):
        Exhaustive(FLOAT16, ("w", "x"), {"lr": math.inf})
    with pytest.raises(UsageError, match="not a finite float16 value"):
        Exhaustive(FLOAT16, ("w", "x"), {"lr": 1})
    with pytest.raises(UsageError, match="swept"):
        Exhaustive(FLOAT16, ["w", "x"], {"w": 1.0})
    with pytest.raises(ValueError):
        Exhaustive(FLOAT16, ("w", "x")).chunk(0, 0)
