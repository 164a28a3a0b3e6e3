"""Verified cases per second: the batch sweep against the scalar paths, and memory against N.

    python benchmarks/bench_sweep.py [--cases 2e7] [--big 1e8] [--impl torch_autograd]
                                     [--dtype float32] [--examples 300]

One core: every figure comes from one process with one thread (torch.set_num_threads(1),
``--workers 1``).  A *verified* case is drawn, run through the implementation, and judged by
the exact reference against its bound (every quantity); the figures include all three.

1. batch sweep (``neuronspec sweep IMPL --workers 1``): cases/s, and time per case by stage;
2. scalar sweep (the step callable case by case, same batch reference);
3. the hypothesis property (``neuronspec.properties.within_bounds`` under ``@given``, mpmath
   reference and scalar bounds), examples/s; the ratio of 1 to 3 is the speed-up the batch path
   brings; then the same with the implementation in a supervised process, as ``neuronspec
   check`` runs it (the cost of the supervision);
4. peak RSS of a whole ``neuronspec sweep`` process for N = 1e6 and N = ``--big``: flat.

Speed claims live here, not in a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _count(text: str) -> int:
    return int(float(text))


def batch_rate(impl: str, dtype: str, cases: int, scalar: bool = False) -> dict:
    from neuronspec.runs.sweep import sweep

    sweep(impl, dtype, min(cases, 1 << 18), seed=99, scalar=scalar)  # warm: imports, JIT cache
    result = sweep(impl, dtype, cases, seed=1, scalar=scalar)
    assert result.violations == 0, result.first_violations
    per = {k: v / result.cases * 1e9 for k, v in result.seconds.items()}
    return {"cases": result.cases, "seconds": result.wall, "rate": result.cases / result.wall,
            "ns_per_case": per, "path": result.path, "startup": result.startup}


def hypothesis_rate(impl_name: str, dtype: str, examples: int, supervised: bool = False) -> dict:
    """``supervised``: the implementation in its own process, as ``neuronspec check`` runs it
    (one protocol round trip per call)."""
    from hypothesis import given, settings

    from neuronspec.cases.strategies import cases
    from neuronspec.implementations import load
    from neuronspec.implementations import supervised as in_process_of_its_own
    from neuronspec.properties import within_bounds

    impl = in_process_of_its_own(impl_name, 10.0) if supervised else load(impl_name)
    seen = []

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None)
    @given(cases(dtype))
    def prop(labelled):
        seen.append(1)
        within_bounds(impl, dtype, labelled)

    prop()  # warm
    seen.clear()
    start = time.perf_counter()
    prop()
    seconds = time.perf_counter() - start
    if supervised:
        impl.close()
    return {"cases": len(seen), "seconds": seconds, "rate": len(seen) / seconds}


def peak_rss(impl: str, dtype: str, cases: int) -> dict:
    code = ("import resource, sys, time; from neuronspec.runs.sweep import sweep; "
            "t = time.time(); "
            f"r = sweep({impl!r}, {dtype!r}, {cases}, seed=1); "
            "print(r.cases, r.violations, time.time() - t, "
            "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    n, bad, seconds, kib = int(out[0]), int(out[1]), float(out[2]), int(out[3])
    assert bad == 0
    return {"cases": n, "seconds": seconds, "peak_rss_mib": kib / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", default="torch_autograd")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--cases", type=_count, default=20_000_000)
    parser.add_argument("--scalar-cases", type=_count, default=20_000)
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--big", type=_count, default=100_000_000,
                        help="N for the second memory figure (0: skip)")
    parser.add_argument("--json", help="also write the figures as JSON")
    args = parser.parse_args()
    import platform

    from neuronspec.artefacts.records import cpu_name

    print(f"neuronspec sweep benchmark: {args.impl} in {args.dtype}, one process, one thread; "
          f"{cpu_name()}, Python {platform.python_version()}")
    figures = {}
    figures["batch"] = b = batch_rate(args.impl, args.dtype, args.cases)
    print(f"  batch sweep       {b['cases']:>12,} cases {b['seconds']:8.2f} s "
          f"{b['rate']:>14,.0f} verified cases/s   ({b['path']} reference; per case: "
          + ", ".join(f"{k} {v:.0f} ns" for k, v in b["ns_per_case"].items())
          + f"; worker start-up {b['startup']:.1f} s before)")
    figures["scalar_sweep"] = s = batch_rate(args.impl, args.dtype, args.scalar_cases,
                                             scalar=True)
    print(f"  scalar sweep      {s['cases']:>12,} cases {s['seconds']:8.2f} s "
          f"{s['rate']:>14,.0f} verified cases/s   (step callable per case, batch reference)")
    figures["hypothesis"] = h = hypothesis_rate(args.impl, args.dtype, args.examples)
    print(f"  hypothesis path   {h['cases']:>12,} cases {h['seconds']:8.2f} s "
          f"{h['rate']:>14,.1f} verified cases/s   (@given within_bounds, mpmath reference)")
    figures["check_path"] = c = hypothesis_rate(args.impl, args.dtype, args.examples,
                                                supervised=True)
    print(f"  check path        {c['cases']:>12,} cases {c['seconds']:8.2f} s "
          f"{c['rate']:>14,.1f} verified cases/s   (the same, the implementation in a "
          "supervised process)")
    print(f"  batch / hypothesis: {b['rate'] / h['rate']:,.0f}x; batch / scalar sweep: "
          f"{b['rate'] / s['rate']:,.0f}x; target >= 5,000,000 verified cases/s/core: "
          f"{'met' if b['rate'] >= 5e6 else 'NOT met'}")
    for n in [1_000_000] + ([args.big] if args.big else []):
        m = peak_rss(args.impl, args.dtype, n)
        figures[f"rss_{n}"] = m
        print(f"  memory: N = {n:>12,}: peak RSS {m['peak_rss_mib']:7.0f} MiB "
              f"({m['seconds']:.1f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
