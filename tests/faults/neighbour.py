"""A module beside ``uses_neighbour.py``: a file implementation imports what is beside it."""
from subjects import correct as step  # noqa: F401
