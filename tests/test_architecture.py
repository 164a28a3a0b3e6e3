"""The architecture, checked on the source: ``reference/`` (the truth) imports nothing from
``neuronspec/`` (the tool) nor anything but numpy and mpmath; no import cycle; no module imports
from a layer above its own; no code reaches into another module's private (underscore) names;
the quantities have one name."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The layers, lowest first: a module may import from its own layer and the layers before it.
#: (A package's __init__ belongs to the layer named for the package itself.)
LAYERS: list[tuple[str, ...]] = [
    ("reference.formats", "reference.step"),
    ("reference.model",),
    ("reference.exact",),
    ("reference.dyadic",),
    ("reference.rounded",),
    ("reference.legal",),
    ("reference.bounds",),
    ("reference.judge",),
    ("reference.batch.arith",),
    ("reference.batch.chain",),
    ("reference.batch.judgement",),
    ("reference.batch.scaled",),
    ("reference.batch.kernel",),
    ("reference.batch.verdict",),
    ("reference.batch", "reference"),
    ("neuronspec.errors", "neuronspec.data"),
    ("neuronspec.cases",),
    ("neuronspec.implementations",),
    ("neuronspec.findings", "neuronspec.properties", "neuronspec.fingerprint"),
    ("neuronspec.artefacts",),
    ("neuronspec.runs",),
    ("neuronspec.cli", "neuronspec.plugin", "neuronspec.suite", "neuronspec.__main__",
     "neuronspec"),
]

#: What the reference may import from outside the standard library.
REFERENCE_THIRD_PARTY = {"numpy", "mpmath"}


def _modules() -> dict[str, Path]:
    out = {}
    for package in ("reference", "neuronspec"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def resolve_alias(module: str, level: int, name: "str | None", is_package: bool) -> str:
    if not level:
        return name or ""
    base = module.split(".")
    base = base[:len(base) - level + (1 if is_package else 0)]
    return ".".join(base + ([name] if name else []))


def _imports(module: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import statement anywhere."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = resolve_alias(module, node.level, node.module, path.name == "__init__.py")
            out.append((target, [alias.name for alias in node.names], node.lineno))
    return out


def _project_targets(target: str, names: list[str]) -> list[str]:
    """The project modules an import statement loads (``from pkg import mod`` loads pkg.mod)."""
    found = [t for t in (f"{target}.{n}" for n in names) if t in MODULES]
    if target in MODULES:
        found.append(target)
    return found


def _layer(module: str) -> int:
    best, index = -1, None
    for i, group in enumerate(LAYERS):
        for prefix in group:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, index = len(prefix), i
    assert index is not None, f"{module} belongs to no layer: add it to LAYERS"
    return index


def _graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (its own parent packages are loaded before it
    anyway, so an import of one of them, e.g. of ``__version__``, is no edge)."""
    return {m: {t for target, names, _ in _imports(m) for t in _project_targets(target, names)
                if t != m and not m.startswith(t + ".")} for m in MODULES}


def test_the_reference_imports_nothing_from_the_tool():
    bad = []
    for module in MODULES:
        if not module.startswith("reference"):
            continue
        for target, _, line in _imports(module):
            top = target.split(".")[0]
            if top == "neuronspec" or (top not in sys.stdlib_module_names
                                        and top not in REFERENCE_THIRD_PARTY | {"reference"}
                                        and not (module == "reference.batch.kernel"
                                                 and top == "numba")):
                bad.append(f"{MODULES[module].relative_to(ROOT)}:{line} imports {target}")
    assert not bad, "the reference depends on numpy and mpmath only:\n" + "\n".join(bad)


def test_every_module_imports_only_from_its_layer_or_below():
    bad = []
    for module, targets in _graph().items():
        for target in targets:
            if _layer(target) > _layer(module):
                bad.append(f"{module} (layer {_layer(module)}) imports {target} "
                           f"(layer {_layer(target)})")
    assert not bad, "\n".join(bad)


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(t):] + [t]))
            if t not in state:
                visit(t)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def _private_uses(path: Path, module: "str | None") -> list[str]:
    """``from x import _name`` and ``alias._name`` where alias is a project module."""
    tree = ast.parse(path.read_text())
    aliases: dict[str, str] = {}
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = (resolve_alias(module, node.level, node.module, path.name == "__init__.py")
                      if module else node.module or "")
            for alias in node.names:
                full = f"{target}.{alias.name}"
                if full in MODULES:
                    aliases[alias.asname or alias.name] = full
                elif target in MODULES and re.match(r"_[a-z]", alias.name):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {target}."
                               f"{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and re.match(r"_[a-z]", node.attr)
                and isinstance(node.value, ast.Name) and node.value.id in aliases):
            bad.append(f"{path.relative_to(ROOT)}:{node.lineno} uses "
                       f"{aliases[node.value.id]}.{node.attr}")
    return bad


def test_nothing_reaches_into_another_modules_private_names():
    bad = []
    for module, path in MODULES.items():
        bad += _private_uses(path, module)
    for folder in ("tests", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            bad += _private_uses(path, None)
    assert not bad, "\n".join(bad)


def test_the_private_name_check_can_fail(tmp_path):
    probe = ROOT / "tests" / "_probe_private_use.py"
    probe.write_text("from reference import bounds\nfrom reference.bounds import _up\n"
                     "x = bounds._text\n")
    try:
        found = _private_uses(probe, None)
    finally:
        probe.unlink()
    assert len(found) == 2, found


#: The protocol server is one standard-library file, copied into other environments: it keeps
#: its own copy of the names, checked below against reference.step.
STANDALONE = "neuronspec.implementations.serve"


def _spelled_lists(path: Path, names: set) -> list[int]:
    """Lines of tuple or list literals of strings that hold every one of ``names``."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Tuple, ast.List)) and node.elts and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
            if names <= {e.value for e in node.elts}:
                lines.append(node.lineno)
    return lines


def test_the_quantities_have_one_name():
    """No module spells out the list of quantities (or inputs) again: they come from
    reference.step."""
    from reference import step

    bad = [f"{path.relative_to(ROOT)}:{line}" for module, path in MODULES.items()
           if module not in ("reference.step", STANDALONE)
           for names in (set(step.REQUIRED), set(step.INPUTS))
           for line in _spelled_lists(path, names)]
    assert not bad, f"quantity or input lists written again at {bad}; use reference.step's"


def test_the_standalone_server_spells_them_as_the_reference_does():
    import importlib.util

    from reference import step

    spec = importlib.util.spec_from_file_location("_serve_copy", MODULES[STANDALONE])
    serve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serve)
    assert serve.INPUTS == step.INPUTS and serve.REQUIRED == step.REQUIRED
    assert serve.OPTIONAL == step.OPTIONAL
