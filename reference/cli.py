"""The ``neuronspec`` command."""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .formats import FORMATS

__all__ = ["main"]


def _formats(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown format {', '.join(bad) or repr(text)}; use a comma-separated list of "
            + ", ".join(FORMATS)
        )
    return names


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuronspec",
        description="Exact reference and conformance checks for one gradient-descent step of "
        "a single neuron (y = w*x + b, L = (y - t)^2 / 2).",
    )
    parser.add_argument("--version", action="version", version=f"neuronspec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    ex = sub.add_parser("example", help="the seed example: exact values, bundled implementations, "
                        "errors in ulps (the default command)")
    ex.add_argument("--dtype", type=_formats, default=None,
                    help="comma-separated formats (default: all four)")
    return parser


def main(argv: "list[str] | None" = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command = args.command or "example"
    if command == "example":
        from .seed import render_seed, seed_sections

        print(render_seed(seed_sections(getattr(args, "dtype", None))))
        return 0
    parser.error(f"unknown command {command!r}")  # pragma: no cover - argparse rejects first
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
