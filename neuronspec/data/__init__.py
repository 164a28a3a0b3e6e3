"""What the commands need at run time, shipped inside the package: the language-neutral test
vectors and their schema, the JSON schemas of reports, results files and records, and the
template of ``spec/tolerances.md``.

In a checkout these folders are links into ``spec/``, the readable home of the documents; a
built wheel carries copies.  They are found with ``importlib.resources``, so every command works
from any directory with the installed package alone.
"""

from __future__ import annotations

import json
from importlib import resources
from importlib.resources.abc import Traversable

__all__ = ["root", "vectors", "schema", "template"]


def root() -> Traversable:
    return resources.files(__name__)


def vectors() -> Traversable:
    """The folder of the shipped test vectors (``<format>.json``, ``schema.json``)."""
    return root() / "vectors"


def schema(name: str) -> dict:
    """A shipped JSON schema by file name (``report.schema.json``, ...)."""
    return json.loads((root() / "schemas" / name).read_text(encoding="utf-8"))


def template(name: str) -> str:
    """A shipped document template by file name."""
    return (root() / "templates" / name).read_text(encoding="utf-8")
