"""A file implementation that imports a module beside it, as ``python uses_neighbour.py``
would find it."""
from neighbour import step  # noqa: F401
