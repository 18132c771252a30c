"""The package's import structure: every module imports on its own, the graph is acyclic,
and ``import xstf`` stays light."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import xstf

ROOT = Path(xstf.__file__).parent
HAS_TORCH = importlib.util.find_spec("torch") is not None


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _needs_torch(name: str) -> bool:
    return name.startswith("xstf.models.") and name not in ("xstf.models.registry",)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports run when the module is imported: top level, inside try/if (not TYPE_CHECKING)."""
    found: list[ast.Import | ast.ImportFrom] = []
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            stack += node.body + node.orelse
        elif isinstance(node, ast.Try):
            stack += node.body + node.orelse + node.finalbody
            for handler in node.handlers:
                stack += handler.body
        elif isinstance(node, ast.With):
            stack += node.body
    return found


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph() -> dict[str, set[str]]:
    """Module -> xstf modules it imports at module level (relative imports resolved)."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        is_pkg = path.name == "__init__.py"
        package = name if is_pkg else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _module_level_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                bases = [a.name for a in node.names]
                subs: list[str] = []
            else:
                if node.level:
                    base_parts = package.split(".")
                    base_parts = base_parts[: len(base_parts) - node.level + 1]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                bases = [base]
                subs = [f"{base}.{a.name}" for a in node.names]
            for target in bases + subs:
                if target in MODULES:
                    targets.add(target)
                    # importing a.b.c runs a and a.b first (except our own packages)
                    targets.update(a for a in _ancestors(target) if a not in _ancestors(name))
        targets.discard(name)
        graph[name] = {t for t in targets if t not in _ancestors(name)}
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_graph_sees_relative_and_absolute_imports():
    graph = import_graph()
    assert "xstf.cube" in graph["xstf.accessor"]  # `from . import cube as _cube`
    assert "xstf.errors" in graph["xstf.cube"]  # `from .errors import CubeError`
    assert "xstf.export" not in graph["xstf.cube"]  # imported inside a function only


def test_package_import_graph_is_acyclic():
    cycle = _find_cycle(import_graph())
    assert cycle is None, f"module-level import cycle: {' -> '.join(cycle or [])}"


_IMPORT_EACH = """
import importlib, os, sys, traceback
# third-party packages first (shared by the forks); xstf itself is imported in each child only
import numpy, pandas, xarray, dask.array  # noqa: F401
for heavy in ("scipy.ndimage", "rioxarray", "numba", "matplotlib", "torch"):
    try:
        importlib.import_module(heavy)
    except ImportError:
        pass
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        failed.append(name)
print("FAILED", " ".join(failed))
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_every_module_imports_on_its_own():
    names = [n for n in MODULES if HAS_TORCH or not _needs_torch(n)]
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH, *names],
        capture_output=True,
        text=True,
        cwd=ROOT.parent,
        check=True,
    )
    failed = out.stdout.split("FAILED", 1)[1].split()
    assert failed == [], f"{failed} do not import alone:\n{out.stderr[-3000:]}"


def test_import_xstf_is_light():
    code = (
        "import sys, xstf; "
        "print(' '.join(m for m in ('rioxarray', 'scipy', 'torch', 'numba', 'matplotlib', "
        "'pyproj', 'xstf.datasets', 'xstf.export') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT.parent
    )
    assert out.stdout.split() == []
    # and the lazy names still work
    assert xstf.datasets.synthetic(size=8, days=1).sizes["time"] == 1
    assert callable(xstf.to_netcdf) and callable(xstf.to_geotiff) and callable(xstf.open_zarr)


# -- packaging: one version, dependencies where they are used -------------------------------

_IMPORT_NAME = {
    "odc-geo": "odc",
    "dask[array]": "dask",
    "scikit-image": "skimage",
    "netCDF4": "netCDF4",
}
_USED_WITHOUT_IMPORT = {
    "netCDF4": "xarray's engine='netcdf4' (xstf.export.to_netcdf)",
    "rasterio": "GDAL through rioxarray (readers, GeoTIFF writer, reprojection)",
}


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((ROOT.parent / "pyproject.toml").read_text())


def _imported_top_names(modules) -> set[str]:
    names: set[str] = set()
    for name in modules:
        for node in ast.walk(ast.parse(MODULES[name].read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    return names


def _dist_name(requirement: str) -> str:
    import re

    return re.split(r"[<>=!~ ;]", requirement, maxsplit=1)[0]


@pytest.mark.skipif(not (ROOT.parent / "pyproject.toml").exists(), reason="not a source tree")
def test_version_has_one_source():
    project = _pyproject()
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "xstf._version.__version__"
    from xstf._version import __version__

    assert xstf.__version__ == __version__


@pytest.mark.skipif(not (ROOT.parent / "pyproject.toml").exists(), reason="not a source tree")
def test_core_dependencies_are_used_by_core_code():
    core = [n for n in MODULES if not n.startswith("xstf.models")]
    used = _imported_top_names(core)
    for req in _pyproject()["project"]["dependencies"]:
        dist = _dist_name(req)
        name = _IMPORT_NAME.get(dist, dist.replace("-", "_"))
        assert name in used or dist in _USED_WITHOUT_IMPORT, f"core dependency {dist} is unused"
    core_deps = {_dist_name(r) for r in _pyproject()["project"]["dependencies"]}
    assert "tqdm" in used and "tqdm" in core_deps  # progress bars of the CV pass and coverage
    assert not {"skimage", "distributed"} & used
