"""The measurement records of ``spec/data``: loaded, validated, merged and written in one place.

A record is a JSON file named after its kind (``soundness.json``, ``sweeps.json``,
``crosscheck.json``, ``cuda.json``, ``run_soundness.json``) with ``"recordVersion": 1``, defined by
``spec/schemas/records.schema.json``.  Updates hold a lock on the file and replace it atomically,
so concurrent ``--record`` runs neither lose entries nor leave a half-written file; a record
that does not match its schema is refused with one line (the data is not touched).
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Optional

from .. import data
from ..errors import DataError
from . import jsontext

__all__ = ["KINDS", "RECORD_VERSION", "DEFAULT_DIR", "path_of", "load", "validate", "write",
           "prepare", "update", "machine", "cpu_name", "OCTAVE_BINS", "octave_bin"]

RECORD_VERSION = 1
KINDS = ("soundness", "sweeps", "crosscheck", "cuda", "run_soundness")
#: Where the records live in a checkout (commands take another folder as an option).
DEFAULT_DIR = Path("spec/data")


def path_of(kind: str, directory: "Path | str" = DEFAULT_DIR) -> Path:
    if kind not in KINDS:
        raise ValueError(f"unknown record kind {kind!r}; one of {', '.join(KINDS)}")
    return Path(directory) / f"{kind}.json"


def validate(kind: str, content: object, where: str = "") -> None:
    """Raise DataError (one line) unless ``content`` is a valid record of ``kind``."""
    import jsonschema

    try:
        data.validate(content, "records.schema.json", kind)
    except jsonschema.ValidationError as exc:
        at = "/".join(map(str, exc.absolute_path)) or "the top level"
        raise DataError(f"{where or kind + ' record'} does not match the records' schema: "
                        f"{exc.message} at {at} (rerun the command recorded in it, or restore "
                        "it from version control)") from None


def load(kind: str, path: "Path | str | None" = None, *, required: bool = True) -> Optional[dict]:
    """The record of ``kind`` at ``path`` (default: spec/data), validated; None when it does
    not exist and is not ``required``."""
    path = Path(path) if path is not None else path_of(kind)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise DataError(f"{path} does not exist; run the command that records it "
                            f"({_COMMANDS[kind]}) first") from None
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} cannot be read ({exc})") from None
    try:
        content = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); rerun {_COMMANDS[kind]} or "
                        "restore it from version control") from None
    validate(kind, content, str(path))
    return content


_COMMANDS = {"soundness": "`neuronspec soundness`", "sweeps": "`neuronspec sweep ... --record`",
             "crosscheck": "`neuronspec crosscheck --record`",
             "cuda": "`benchmarks/gpu_sweep.py` on a GPU machine",
             "run_soundness": "`neuronspec soundness --runs`"}


def _dump(content: dict) -> str:
    return jsontext.dumps(content, indent=1, sort_keys=True) + "\n"


def write(kind: str, content: dict, path: "Path | str") -> None:
    """Validate and write a record atomically (a temporary file, then a rename)."""
    content = dict(content, recordVersion=RECORD_VERSION)
    validate(kind, content, str(path))
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(_dump(content))
            # mkstemp makes the file private (0600); a record is as readable as the file it
            # replaces, or as a new file under the user's umask
            os.chmod(tmp, _mode(path))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise DataError(f"cannot write {path} ({exc}); choose a writable path") from None


def _mode(path: Path) -> int:
    """The permission bits ``path`` has, or those a new file gets under the current umask."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside ``path`` (where the platform has fcntl)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: atomic replace only
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path.parent / f".{path.name}.lock", "w")
    except OSError as exc:
        raise DataError(f"cannot write beside {path} ({exc}); choose a writable path") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def prepare(kind: str, path: "Path | str") -> None:
    """Before a run that will record into ``path``: the record there (if any) is valid and the
    path writable, so that a long run cannot end in a record it cannot write."""
    path = Path(path)
    load(kind, path, required=False)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK) \
            or (path.exists() and not os.access(path, os.W_OK)):
        raise DataError(f"cannot write the {kind} record {path}; choose a writable file")


def update(kind: str, path: "Path | str", change: Callable[[dict], dict]) -> dict:
    """Read the record at ``path`` (or start an empty one), apply ``change`` and write it back,
    under a lock: concurrent updates serialise instead of losing entries."""
    path = Path(path)
    with _locked(path):
        current = load(kind, path, required=False) or {}
        content = change(dict(current))
        write(kind, content, path)
    return content


#: Histograms in records count log2 of a quantity in bins of a quarter of a binade.
OCTAVE_BINS = 4


def octave_bin(x: Fraction) -> str:
    """The histogram bin of an exact ratio >= 1 (its log2 in quarters of a binade, floored),
    as the record's key."""
    n, d = x.numerator, x.denominator
    e = n.bit_length() - d.bit_length()
    if (n << max(0, -e)) < (d << max(0, e)):
        e -= 1
    within = x / Fraction(2) ** e  # in [1, 2)
    quarter = sum(1 for k in range(1, OCTAVE_BINS) if within ** OCTAVE_BINS >= 2 ** k)
    return str(e * OCTAVE_BINS + quarter)


def cpu_name() -> str:
    """The CPU's model name, for a record."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown cpu"


def machine() -> str:
    """The CPU, its count and the system, for a record."""
    return f"{cpu_name()}, {os.cpu_count()} cpus, {platform.system()} {platform.machine()}"
