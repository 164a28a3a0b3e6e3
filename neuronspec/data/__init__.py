"""What the commands need at run time, shipped inside the package: the language-neutral test
vectors and their schema, the JSON schemas of reports, results files and records, and the
template of ``spec/tolerances.md``.

In a checkout these folders are links into ``spec/``, the readable home of the documents; a
built wheel carries copies.  They are found with ``importlib.resources``, so every command works
from any directory with the installed package alone.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

__all__ = ["root", "vectors", "schema", "validate", "template"]


def root() -> Traversable:
    return resources.files(__name__)


def vectors() -> Traversable:
    """The folder of the shipped test vectors (``<format>.json``, ``schema.json``)."""
    return root() / "vectors"


def schema(name: str) -> dict:
    """A shipped JSON schema by file name (``report.schema.json``, ...)."""
    return json.loads((root() / "schemas" / name).read_text(encoding="utf-8"))


def validate(instance: Any, name: str, definition: "str | None" = None) -> None:
    """``jsonschema.validate`` against the shipped schema ``name`` (a file of ``schemas/``, or
    ``vectors/schema.json``), or its ``$defs`` entry ``definition``: raises the same
    ``ValidationError`` (jsonschema's best match), from a validator made once a process."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator(name, definition).iter_errors(instance))
    if error is not None:
        raise error


@functools.lru_cache(maxsize=None)
def _validator(name: str, definition: "str | None") -> Any:
    """(``jsonschema.validate`` checks the schema itself against its metaschema at every call:
    1.7 ms for the results schema, more than validating one of the results entries that
    ``vectors verify`` checks one by one, and 25 ms for the vectors' schema.)"""
    import jsonschema

    where = root()
    for part in name.split("/") if "/" in name else ("schemas", name):
        where = where / part
    schema = json.loads(where.read_text(encoding="utf-8"))
    if definition is not None:
        schema = {"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]}
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def template(name: str) -> str:
    """A shipped document template by file name."""
    return (root() / "templates" / name).read_text(encoding="utf-8")
