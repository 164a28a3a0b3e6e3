"""JSON as the standard allows it: the reports and records neuronspec writes never hold the
``NaN`` or ``Infinity`` tokens that Python's json module writes by default (other parsers refuse
them); a number that is not finite is written as the string "inf", "-inf" or "nan"."""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["standard", "dumps"]


def standard(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its name (recursively)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else ("nan" if value != value else
                                                   "inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: standard(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [standard(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        return standard(value.item())
    return value


#: An indented array of numbers (or "inf"/"nan"), each on a line of its own.
_NUMBERS = re.compile(r'\[\n\s*((?:(?:-?[0-9][-+0-9.eE]*|"-?inf"|"nan"),\n\s*)*'
                      r'(?:-?[0-9][-+0-9.eE]*|"-?inf"|"nan"))\n\s*\]')


def dumps(value: Any, **options: Any) -> str:
    """json.dumps of :func:`standard` (``allow_nan=False``: a stray token is an error); when
    indented, an array of numbers stays on one line (a plot's points, a case)."""
    text = json.dumps(standard(value), allow_nan=False, **options)
    if options.get("indent") is None:
        return text
    return _NUMBERS.sub(lambda m: "[" + re.sub(r",\n\s*", ", ", m.group(1)) + "]", text)
