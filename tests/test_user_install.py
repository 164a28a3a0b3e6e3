"""The tool as a third-party user gets it: the built wheel alone, installed in a fresh virtual
environment, used from a directory outside the checkout.

One test (so that under ``pytest -n auto`` the wheel and the environment are built once):

1. the checkout's files (``git ls-files``: the tracked ones, and new ones that are not ignored;
   symlinks kept as symlinks) are copied to a temporary folder and the wheel is built there
   (``pip wheel --no-deps --no-build-isolation``: nothing is written into the checkout, nothing
   is downloaded); the wheel must carry the package data, the plugin, the reference and the
   ``pytest11`` entry point;
2. a fresh ``venv`` gets the wheel (``pip install --no-deps --no-index``, run by the fresh
   environment's interpreter with this environment's pip: ``pip --python``, so that creating
   it does not install a pip of its own, 2.5 s); its declared
   dependencies, resolved recursively in the running environment, are made visible through one
   folder of symlinks named by a ``.pth`` file -- never the running environment's own (editable)
   ``neuronspec``/``reference`` -- and ``pip check`` must pass there;
3. from a folder outside the checkout, a correct and a wrong single-file implementation go
   through ``neuronspec check`` (and the replay command it prints), ``neuronspec vectors
   run``/``verify`` and the pytest plugin, and the plugin stays inert in an unrelated test run.
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
OWN = {"neuronspec", "reference"}  # the project's own top-level packages: never linked

GOOD = textwrap.dedent('''\
    """A correct step in numpy scalars of the format (float32, float64)."""
    import numpy as np

    _TYPES = {"float32": np.float32, "float64": np.float64}


    def step(w, b, x, t, lr, dtype):
        if dtype not in _TYPES:
            raise NotImplementedError(f"no numpy scalar type for {dtype}")
        dt = _TYPES[dtype]
        w, b, x, t, lr = dt(w), dt(b), dt(x), dt(t), dt(lr)
        with np.errstate(all="ignore"):
            y = w * x + b
            r = y - t
            loss = dt(0.5) * (r * r)
            dL_dw = r * x
            dL_db = r
            w_new = w - lr * dL_dw
            b_new = b - lr * dL_db
        out = {"y": y, "dL_dy": r, "loss": loss, "dL_dw": dL_dw, "dL_db": dL_db,
               "w_new": w_new, "b_new": b_new}
        return {k: float(v) for k, v in out.items()}
    ''')
# The classic slip: the loss without its 1/2 (gradients stay right, the loss is twice too big).
BAD = GOOD.replace("loss = dt(0.5) * (r * r)", "loss = r * r  # BUG: no 1/2").replace(
    "A correct step", "A wrong step (loss without its 1/2)")
assert BAD != GOOD

TEST_X = "def test_unrelated():\n    assert 1 + 1 == 2\n"


# ---- helpers ------------------------------------------------------------------------------------

def _tail(text: str | bytes | None, n: int = 4000) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text if len(text) <= n else "..." + text[-n:]


def _describe(cmd, rc, out, err) -> str:
    return (f"command: {' '.join(map(str, cmd))}\nexit status: {rc}\n"
            f"--- stdout (tail) ---\n{_tail(out)}\n--- stderr (tail) ---\n{_tail(err)}")


def _run(cmd, *, cwd, env, timeout: float) -> subprocess.CompletedProcess:
    cmd = [str(c) for c in cmd]
    try:
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"timed out after {timeout} s\n" + _describe(cmd, None, exc.stdout,
                                                                  exc.stderr))


def _expect(proc: subprocess.CompletedProcess, rc: int) -> str:
    """The combined output of ``proc``; fails with its tail unless it exited with ``rc``."""
    if proc.returncode != rc:
        pytest.fail(f"expected exit status {rc}\n"
                    + _describe(proc.args, proc.returncode, proc.stdout, proc.stderr),
                    pytrace=False)
    return proc.stdout + proc.stderr


def _clean_env(extra_path: Path | None = None) -> dict[str, str]:
    """The environment of every subprocess: nothing pointing back into the checkout or the
    running test session (PYTHONPATH, pytest/xdist/neuronspec variables, the active venv)."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV",
                        "__PYVENV_LAUNCHER__", "PYTHONSAFEPATH", "CI"}
           and not k.startswith(("PYTEST_", "NEURONSPEC_", "COV_CORE_", "PIP_", "HYPOTHESIS"))}
    env.update(PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1", PIP_NO_INDEX="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", PIP_CONFIG_FILE=os.devnull,
               PYTHONIOENCODING="utf-8")
    if extra_path is not None:
        env["PATH"] = str(extra_path) + os.pathsep + env.get("PATH", "")
    return env


def _tracked_files() -> list[str]:
    if shutil.which("git") is None:
        pytest.skip("git is not available: cannot list the checkout's tracked files")
    probe = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=ROOT,
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0 or probe.stdout.strip() != "true":
        pytest.skip(f"{ROOT} is not a git checkout ({probe.stderr.strip() or probe.stdout})")
    # Tracked files plus new files not yet added (but not ignored ones: .venv, build outputs),
    # so that a module created and not yet committed is in the wheel as it is in the tree.
    cmd = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=60)
    assert proc.returncode == 0, _describe(cmd, proc.returncode, proc.stdout, proc.stderr)
    return [p for p in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def _copy_checkout(dest: Path) -> None:
    """The checkout's files that git tracks or would track (as they are in the working tree),
    symlinks as symlinks with their (relative) targets unchanged."""
    seen = set()
    for rel in _tracked_files():
        src, dst = ROOT / rel, dest / rel
        if rel in seen or not os.path.lexists(src):  # deleted in the working tree
            continue
        seen.add(rel)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        elif src.is_file():
            shutil.copy2(src, dst)


def _top_levels(dist: importlib.metadata.Distribution) -> set[str]:
    """The top-level entries a distribution installed in site-packages (packages, modules, its
    .dist-info folder), from its RECORD."""
    tops = set()
    for f in dist.files or ():
        parts = PurePosixPath(str(f).replace("\\", "/")).parts
        if not parts or parts[0] in ("..", "/") or parts[0].startswith("/"):
            continue  # scripts and other files outside site-packages
        top = parts[0]
        if top == "__pycache__" or top.endswith(".pth"):
            continue
        tops.add(top)
    return tops


def _dependency_closure(requires: list[str]) -> dict[str, importlib.metadata.Distribution]:
    """The distributions that satisfy ``requires`` (no extras), recursively, as installed in the
    running environment; canonical name -> distribution."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, importlib.metadata.Distribution] = {}
    todo = [Requirement(r) for r in requires]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in found:
            continue
        assert name not in OWN, f"the project depends on itself? {req}"
        try:
            dist = importlib.metadata.distribution(req.name)
        except importlib.metadata.PackageNotFoundError:
            pytest.fail(f"declared dependency {req} is not installed in the running environment")
        assert req.specifier.contains(dist.version, prereleases=True), (
            f"installed {dist.metadata['Name']} {dist.version} does not satisfy {req}")
        found[name] = dist
        todo += [Requirement(r) for r in dist.requires or ()]
    return found


def _link_dependencies(dists: dict[str, importlib.metadata.Distribution], folder: Path) -> None:
    folder.mkdir()
    for name, dist in sorted(dists.items()):
        tops = _top_levels(dist)
        assert tops, f"{name}: no files recorded (RECORD missing?)"
        assert not tops & OWN, f"{name} would expose the project's own packages: {tops & OWN}"
        for top in sorted(tops):
            target = Path(dist.locate_file(top))
            if not os.path.lexists(target):
                continue  # recorded but not present (e.g. a generated file removed later)
            link = folder / top
            if os.path.lexists(link):
                assert os.path.realpath(link) == os.path.realpath(target), (
                    f"{top} is provided by two distributions: {os.readlink(link)} and {target}")
                continue
            os.symlink(target, link)


# ---- the test ------------------------------------------------------------------------------------

@pytest.mark.early
def test_wheel_works_for_a_user_outside_the_checkout(tmp_path_factory):
    started = time.monotonic()
    base = tmp_path_factory.mktemp("user_install")
    copy, dist_dir = base / "src", base / "dist"
    copy.mkdir()
    _copy_checkout(copy)  # skips unless git and a checkout are there
    env = _clean_env()

    # 1. the wheel, built from the copy
    build = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "-w", dist_dir, copy], cwd=base, env=env, timeout=180)
    _expect(build, 0)
    wheels = sorted(dist_dir.glob("neuronspec-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {dist_dir}: {os.listdir(dist_dir)}"
    wheel = wheels[0]
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        assert len(info) == 1, f"dist-info folders in the wheel: {info}"
        info_dir = info.pop()
        entry_points = zf.read(f"{info_dir}/entry_points.txt").decode() \
            if f"{info_dir}/entry_points.txt" in names else ""
        metadata = email.parser.Parser().parsestr(zf.read(f"{info_dir}/METADATA").decode())
    for needed in ("neuronspec/data/vectors/float32.json",
                   "neuronspec/data/schemas/report.schema.json",
                   "neuronspec/plugin.py", "neuronspec/suite.py", "neuronspec/cli.py",
                   "reference/step.py"):
        assert needed in names, f"{needed} missing from {wheel.name}"
    assert "[pytest11]" in entry_points, f"no [pytest11] entry point:\n{entry_points}"
    for entry in (r"neuronspec\.plugin", r"neuronspec\.cli:main"):
        assert re.search(rf"^neuronspec\s*=\s*{entry}\s*$", entry_points, re.M), entry_points
    tops = {n.split("/")[0] for n in names}
    assert tops == {"neuronspec", "reference", info_dir}, f"unexpected top-level entries: {tops}"

    # 2. a fresh environment with the wheel; the dependencies linked in, not downloaded
    venv = base / "venv"
    _expect(_run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=base, env=env,
                 timeout=180), 0)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    env = _clean_env(bindir)
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(_expect(_run([python, "-c", purelib], cwd=base, env=env, timeout=60), 0).strip())
    assert site.is_dir(), site

    requires = [r for r in metadata.get_all("Requires-Dist") or ()
                if not re.search(r"\bextra\s*==", r)]
    closure = _dependency_closure(requires)
    links = base / "deps"
    _link_dependencies(closure, links)
    (site / "zz_neuronspec_test_deps.pth").write_text(f"{links}\n", encoding="utf-8")

    pip = [sys.executable, "-m", "pip", "--python", python]  # pip run by the fresh interpreter
    _expect(_run([*pip, "install", "--no-deps", "--no-index", wheel], cwd=base, env=env,
                 timeout=180), 0)
    where = _expect(_run([python, "-c", "import neuronspec, reference; "
                          "print(neuronspec.__file__); print(reference.__file__)"],
                         cwd=base, env=env, timeout=60), 0).split()
    for path in where:
        assert Path(path).resolve().is_relative_to(site.resolve()), (
            f"imported from {path}, not from the fresh environment's {site}")
    _expect(_run([*pip, "check"], cwd=base, env=env, timeout=120), 0)
    setup_s = time.monotonic() - started

    # 3. a user's folder outside the checkout
    work = base / "user"
    work.mkdir()
    (work / "good.py").write_text(GOOD, encoding="utf-8")
    (work / "bad.py").write_text(BAD, encoding="utf-8")
    unrelated = base / "unrelated"
    unrelated.mkdir()
    (unrelated / "test_x.py").write_text(TEST_X, encoding="utf-8")
    assert not work.resolve().is_relative_to(ROOT) and str(ROOT) not in env.get("PYTHONPATH", "")
    neuronspec = bindir / ("neuronspec.exe" if os.name == "nt" else "neuronspec")
    assert neuronspec.exists(), f"no console script in {bindir}: {os.listdir(bindir)}"
    pytest_suite = [python, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                    "--neuronspec-dtype", "float32", "--neuronspec-profile", "ci"]

    # The failing run (hypothesis shrinks the failure) runs while the others do; -x: the first
    # failing property is the point (each property shrinks its own failure)
    slow_cmd = [str(c) for c in pytest_suite + ["-x", "--neuronspec-impl", "bad.py:step"]]
    slow_log = base / "slow.log"  # a file, not a pipe: a full pipe would stall it
    with open(slow_log, "w") as log:
        slow = subprocess.Popen(slow_cmd, cwd=work, env=env, stdout=log,
                                stderr=subprocess.STDOUT, text=True)
    try:
        for impl, rc in (("good", 0), ("bad", 1)):
            out = _expect(_run([neuronspec, "check", f"{impl}.py:step", "--dtype", "float32",
                                "--examples", "20", "--sweep", "2000"], cwd=work, env=env,
                               timeout=120), rc)
            assert "Traceback" not in out, out
            if rc:
                assert "replay: neuronspec replay" in out, out
                # The printed replay command reproduces the failure alone, from this folder;
                # the same case on the correct implementation passes.
                line = re.search(r"replay: neuronspec replay (.+)", out).group(1)
                args = shlex.split(line)
                _expect(_run([neuronspec, "replay", *args], cwd=work, env=env, timeout=120), 1)
                args[0] = "good.py:step"
                _expect(_run([neuronspec, "replay", *args], cwd=work, env=env, timeout=120), 0)
            results = f"results-{impl}.json"
            out = _expect(_run([neuronspec, "vectors", "run", f"{impl}.py:step", "--output",
                                results], cwd=work, env=env, timeout=120), 0)
            assert "Traceback" not in out, out
            assert (work / results).stat().st_size > 0
            out = _expect(_run([neuronspec, "vectors", "verify", results], cwd=work, env=env,
                               timeout=120), rc)
            assert "Traceback" not in out, out

        out = _expect(_run(pytest_suite + ["--neuronspec-impl", "good.py:step"], cwd=work,
                           env=env, timeout=180), 0)
        passed = re.search(r"(\d+) passed", out)
        assert passed and int(passed.group(1)) > 0 and "failed" not in out, out

        out = _expect(_run([python, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
                           cwd=unrelated, env=env, timeout=120), 0)
        last = [line for line in out.splitlines() if line.strip()][-1]
        assert re.match(r"1 passed in ", last), f"expected exactly one passing test:\n{out}"

        try:
            slow.wait(timeout=240)
        except subprocess.TimeoutExpired:
            slow.kill()
            slow.wait()
            pytest.fail("timed out after 240 s\n" + _describe(slow_cmd, None, slow_log.read_text(),
                                                               ""), pytrace=False)
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.wait()
    out = _expect(subprocess.CompletedProcess(slow_cmd, slow.returncode, slow_log.read_text(),
                                              ""), 1)
    assert "neuronspec replay" in out, out
    assert re.search(r"\d+ failed", out), out

    print(f"user install: setup {setup_s:.1f} s, total {time.monotonic() - started:.1f} s; "
          f"dependencies linked: "
          + ", ".join(f"{d.metadata['Name']} {d.version}" for d in closure.values()))
