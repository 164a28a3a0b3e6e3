"""The bundled torch implementations on CUDA: 1e8-case sweeps, fingerprint, one-core figure.

    NEURONSPEC_TORCH_DEVICE=cuda python3 benchmarks/gpu_sweep.py OUT.json [--cases 1e8]
        [--workers 14] [--crosscheck 1e6]

Run on a GPU machine (the ``device`` tool); nothing in CI depends on it.  The reference runs on
the machine's CPU cores (one worker per core, each with its own CUDA context); the figures and
the device are written to OUT.json, which ``neuronspec tables`` renders from
``spec/data/cuda.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--cases", type=lambda s: int(float(s)), default=100_000_000)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    parser.add_argument("--crosscheck", type=lambda s: int(float(s)), default=0)
    parser.add_argument("--seed", type=int, default=20261126)
    args = parser.parse_args()
    os.environ.setdefault("NEURONSPEC_TORCH_DEVICE", "cuda")
    import numpy as np
    import torch

    from reference.formats import get_format

    from neuronspec.artefacts import records
    from neuronspec.cases.chunks import chunk_cases
    from neuronspec.fingerprint import batch_fingerprint
    from neuronspec.implementations import load
    from neuronspec.runs.sweep import run_chunk, sweep

    run_chunk(load("numpy"), "float32", 0, 0, 1000)  # JIT cache for the workers
    device = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (no CUDA)")
    info = {"device": device, "torch": torch.__version__,
            "cuda": torch.version.cuda, "numpy": np.__version__, "cpu": records.cpu_name(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "seed": args.seed, "sweeps": {}, "fingerprints": {}}
    print(json.dumps({k: v for k, v in info.items() if not isinstance(v, dict)}), flush=True)
    out = Path(args.out)

    def save():
        records.write("cuda", info, out)

    for impl in ("torch_autograd", "torch_sgd"):
        for dtype in ("float32", "float16", "bfloat16"):
            cols, _ = chunk_cases(get_format(dtype), args.seed, 0, 1 << 18)
            outputs = load(impl).run_batch(dtype, cols)
            info["fingerprints"][f"{impl}/{dtype}"] = batch_fingerprint(dtype, cols, outputs)
            print(impl, dtype, json.dumps(info["fingerprints"][f"{impl}/{dtype}"]), flush=True)
    save()
    one = sweep("torch_autograd", "float32", 20_000_000, seed=1)
    info["one_core"] = {"impl": "torch_autograd", "format": "float32", "cases": one.cases,
                        "seconds": one.wall, "rate": one.cases / one.wall,
                        "violations": one.violations}
    print("one core:", info["one_core"], flush=True)
    save()
    for impl in ("torch_autograd", "torch_sgd"):
        for dtype in ("float32", "float16", "bfloat16"):
            start = time.time()
            r = sweep(impl, dtype, args.cases, seed=args.seed, workers=args.workers)
            entry = r.as_dict()
            entry["command"] = (f"NEURONSPEC_TORCH_DEVICE=cuda neuronspec sweep {impl} --dtype "
                                f"{dtype} --cases {args.cases:.0e} --seed {args.seed} "
                                f"--workers {args.workers}")
            entry["cases_per_second"] = round(r.cases / r.wall)
            info["sweeps"][f"{impl}/{dtype}"] = entry
            print(f"{impl} {dtype}: {r.cases:,} cases, {r.violations} violations, "
                  f"{time.time() - start:.1f} s", flush=True)
            save()
    if args.crosscheck:
        from neuronspec.runs.crosscheck import crosscheck

        info["crosscheck"] = {}
        for dtype in ("float16", "bfloat16", "float32", "float64"):
            start = time.time()
            info["crosscheck"][dtype] = c = crosscheck(dtype, args.crosscheck, args.seed,
                                                       os.cpu_count() or 1)
            print(f"crosscheck {dtype}: {c['cases']:,} cases, {c['disagreements']} "
                  f"disagreements, {time.time() - start:.1f} s", flush=True)
            save()


if __name__ == "__main__":
    main()
