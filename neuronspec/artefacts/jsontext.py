"""JSON as the standard allows it: the reports and records neuronspec writes never hold the
``NaN`` or ``Infinity`` tokens that Python's json module writes by default (other parsers refuse
them); a number that is not finite is written as the string "inf", "-inf" or "nan"."""

from __future__ import annotations

import json
import math
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


def dumps(value: Any, **options: Any) -> str:
    """json.dumps of :func:`standard` (``allow_nan=False``: a stray token is an error)."""
    return json.dumps(standard(value), allow_nan=False, **options)
