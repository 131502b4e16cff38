"""The package layout rule (labkit/__init__.py): pure layers stay pure, `import labkit` stays light."""
import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "labkit"
PURE = ("patterns", "obs", "sim", "_core")
FORBIDDEN_IMPORTS = ("aiohttp", "matplotlib", "ipywidgets", "labkit.services", "labkit.ui",
                     "labkit.labs", "labkit.checks")


def _imports(path: pathlib.Path, *, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in (tree.body if top_level_only else ast.walk(tree)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", PURE)
def test_pure_layers_import_no_io_or_ui(layer):
    bad = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        # _core may import aiohttp inside the one function that makes a client session.
        for name in _imports(path, top_level_only=layer == "_core"):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IMPORTS):
                bad.append(f"{path.relative_to(ROOT.parent)} imports {name}")
    assert not bad, "\n".join(bad)


MODULES = ["labkit"] + [f"labkit.{p.parent.name}.{p.stem}" for p in sorted(ROOT.glob("*/*.py"))
                        if p.parent.name in PURE and p.stem != "__init__"]


@pytest.mark.parametrize("module", MODULES)
def test_importing_stays_light(module):
    """Importing labkit or any pure module loads neither the UI stack nor aiohttp."""
    code = (f"import sys, {module}; heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            f"('matplotlib', 'ipywidgets', 'aiohttp', 'IPython', 'grpc', 'google')); print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"import {module} pulled in: {out.stdout.strip()[:300]}"


def test_top_level_names_resolve_lazily():
    import labkit
    for name in labkit.__all__:
        assert getattr(labkit, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        labkit.nope  # noqa: B018


def test_modules_stay_a_few_hundred_lines():
    long = [f"{p.relative_to(ROOT.parent)}: {n}" for p in ROOT.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500]
    assert not long, long


def test_glossary_is_package_data():
    """A built wheel must carry the glossary (not only an editable install)."""
    import tomllib
    cfg = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())
    patterns = cfg["tool"]["setuptools"]["package-data"]["labkit"]
    assert (ROOT / "course" / "glossary.csv").is_file()
    assert any(pathlib.PurePath("course/glossary.csv").match(p) for p in patterns), patterns
