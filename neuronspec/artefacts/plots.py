"""Pictures for ``spec/``: error/bound against conditioning, per format (``neuronspec plots``).

For each case of a seeded sample (the sweep's regimes) and each quantity, the plot shows the
implementation's error divided by neuronspec's bound (at most 1: the line) and, for the same
values, divided by ``torch.testing.assert_close``'s default tolerance ``atol + rtol*|exact|``,
against the conditioning ``kappa = (|w*x| + |b| + |t|) / |r|``.  Under cancellation (large
kappa) the rounding errors of ``w*x + b - t`` stay the size of its parts while ``r`` shrinks:
a relative tolerance is crossed, the derived bound is not.

The PNG carries the digest of the plotted data in a text chunk: the staleness test recomputes
the data (a few ms) and compares digests, without matplotlib and without comparing pixels.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np

from reference.batch import check_batch, exact_pairs, work_for
from reference.formats import FORMATS, get_format
from reference.step import INPUTS, NODE_OF, REQUIRED

from ..cases.chunks import chunk_cases
from ..errors import UsageError
from ..implementations import load
from .peers import DEFAULT_PEER, PEER_TOLERANCES

__all__ = ["plot_data", "digest", "write_plot", "png_text", "PLOTS_COMMAND", "PLOT_DIR",
           "PLOT_CASES", "PLOT_SEED", "PLOT_IMPL"]

PLOTS_COMMAND = "neuronspec plots"
PLOT_DIR = Path("spec/plots")
PLOT_CASES = 30_000
PLOT_SEED = 20261126
#: Which bundled implementation is plotted per format (numpy has no bfloat16).
PLOT_IMPL = {"float16": "numpy", "bfloat16": "torch_autograd", "float32": "numpy",
             "float64": "numpy"}
TOOL = DEFAULT_PEER


def plot_data(fmt_name: str, cases: int = PLOT_CASES, seed: int = PLOT_SEED,
              impl_name: "str | None" = None) -> dict:
    """kappa, error/bound and error/assert_close-tolerance per quantity (in-domain values)."""
    with np.errstate(all="ignore"):  # float64: extended values beyond binary64's range
        return _plot_data(get_format(fmt_name), cases, seed, load(impl_name or PLOT_IMPL[fmt_name]))


def _plot_data(fmt, cases, seed, impl) -> dict:
    cols, slices = chunk_cases(fmt, seed, 0, cases)
    outputs = impl.run_batch(fmt.name, cols)
    verdict = check_batch(fmt, cols, outputs, engine="numpy")
    work = work_for(fmt)
    args = [np.asarray(cols[k], dtype=work.dtype) for k in INPUTS]
    nodes = exact_pairs(work, dict(zip(INPUTS, args)))
    r = np.abs(nodes["r"].hi).astype(np.float64)
    parts = (np.abs(nodes["p"].hi) + np.abs(args[1]) + np.abs(args[3])).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(r > 0, parts / r, np.inf)
    rtol, atol = PEER_TOLERANCES[TOOL][fmt.name]
    regime = np.empty(len(r), dtype=object)
    for name, a, b in slices:
        regime[a:b] = name
    out = {"format": fmt.name, "impl": impl.name, "cases": cases, "seed": seed, "quantities": {}}
    for q in REQUIRED:
        node = nodes[NODE_OF[q]]
        exact = (node.hi + node.lo).astype(np.float64)
        err = np.abs((outputs[q].astype(work.dtype) - node.hi) - node.lo).astype(np.float64)
        keep = np.isfinite(verdict.ratio[q]) & np.isfinite(kappa) & np.isfinite(exact)
        with np.errstate(divide="ignore", invalid="ignore"):
            peer = err / (atol + rtol * np.abs(exact))
        out["quantities"][q] = {"kappa": kappa[keep], "ratio": verdict.ratio[q][keep],
                                "peer": peer[keep], "regime": regime[keep]}
    return out


def digest(data: dict) -> str:
    """sha256 of the plotted numbers (float32-rounded: what a picture can show)."""
    h = hashlib.sha256(f"{data['format']} {data['impl']} {data['cases']} {data['seed']}".encode())
    with np.errstate(all="ignore"):
        for q in REQUIRED:
            d = data["quantities"][q]
            for key in ("kappa", "ratio", "peer"):
                h.update(np.asarray(d[key], dtype=np.float32).tobytes())
    return h.hexdigest()


def write_plot(data: dict, path: Path) -> None:
    """The PNG for one format (needs matplotlib: pip install 'neuronspec[plots]')."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError("plots need matplotlib: pip install 'neuronspec[plots]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rtol, atol = PEER_TOLERANCES[TOOL][data["format"]]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5), sharex=True, sharey=True)
    floor = 1e-8
    for ax, q in zip(axes.ravel(), REQUIRED):
        d = data["quantities"][q]
        x = np.clip(d["kappa"], 1.0, 1e20)
        peer = np.clip(d["peer"], floor, 1e30)
        ours = np.clip(d["ratio"], floor, 1e30)
        ax.scatter(x, peer, s=2, alpha=0.35, color="tab:orange", linewidths=0,
                   label=f"error / assert_close default (rtol={rtol:g}, atol={atol:g})")
        ax.scatter(x, ours, s=2, alpha=0.35, color="tab:blue", linewidths=0,
                   label="error / neuronspec bound")
        ax.axhline(1.0, color="black", linewidth=1)
        fails = int(np.count_nonzero(d["peer"] > 1))
        worst = float(np.max(d["ratio"])) if len(d["ratio"]) else 0.0
        ax.set_title(f"{q}: max error/bound {worst:.3f}\nassert_close rejects {fails:,} of "
                     f"{len(peer):,} correct values", fontsize=9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(floor / 2, 1e12)
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("conditioning (|w x| + |b| + |t|) / |r|")
    for ax in axes[:, 0]:
        ax.set_ylabel("error / tolerance")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, markerscale=6, fontsize=9)
    fig.suptitle(f"{data['impl']} in {data['format']}: {data['cases']:,} cases (sweep regimes, "
                 f"seed {data['seed']}); the line is each tolerance (1)", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=90, metadata={
            "Software": None,  # no matplotlib version: the file changes only with the data
            "Title": f"neuronspec {data['format']}",
            "Description": f"Generated by `{PLOTS_COMMAND}`; data {digest(data)}"})
    except OSError as exc:
        raise UsageError(f"cannot write {path} ({exc.strerror or exc}); choose a writable "
                         "--dir") from None
    finally:
        plt.close(fig)


def png_text(path: Path) -> dict[str, str]:
    """The tEXt chunks of a PNG file."""
    blob = Path(path).read_bytes()
    if blob[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG file")
    out, pos = {}, 8
    while pos < len(blob):
        (length,) = struct.unpack(">I", blob[pos:pos + 4])
        kind = blob[pos + 4:pos + 8]
        body = blob[pos + 8:pos + 8 + length]
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            out[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        pos += 12 + length
    return out


def write_all(directory: Path = PLOT_DIR, formats=tuple(FORMATS)) -> list[Path]:
    paths = []
    for name in formats:
        path = Path(directory) / f"{name}.png"
        write_plot(plot_data(name), path)
        paths.append(path)
    return paths
