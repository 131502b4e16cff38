"""The repository keeps its promises: clean notebooks, one dependency list, honest README."""
import pathlib
import re
import subprocess
import sys
import tomllib

import nbformat
import pytest
import yaml

import labkit
from notebook_tools import NOTEBOOKS, ROOT

CONDA_NAMES = {"msgpack-python": "msgpack"}     # conda-forge name -> PyPI name


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_notebooks_are_stored_without_outputs():
    for path in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name


def test_the_notebook_cleaner_would_change_nothing():
    done = subprocess.run([sys.executable, "scripts/clean_notebooks.py", "--check", "notebooks"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_the_cleaner_finds_outputs(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("1 + 1")
    cell.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    cell.execution_count = 1
    nb.cells = [cell]
    path = tmp_path / "dirty.ipynb"
    nbformat.write(nb, path)
    check = [sys.executable, str(ROOT / "scripts/clean_notebooks.py"), "--check", str(path)]
    assert subprocess.run(check, capture_output=True).returncode == 1
    subprocess.run(check[:2] + [str(path)], check=True, capture_output=True)
    assert subprocess.run(check, capture_output=True).returncode == 0


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_side = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_side = set()
    for dep in env["dependencies"]:
        if isinstance(dep, str) and _name(dep) not in ("python", "pip"):
            conda_side.add(CONDA_NAMES.get(_name(dep), _name(dep)))
    assert conda_side == pip_side, {"only in environment.yml": conda_side - pip_side,
                                    "only in pyproject.toml": pip_side - conda_side}


def test_every_notebook_checks_the_labkit_version_it_was_written_for():
    major_minor = ".".join(labkit.__version__.split(".")[:2])
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == labkit.__version__
    for path in NOTEBOOKS.glob("*.ipynb"):
        text = path.read_text()
        assert f'labkit.require(\\"{major_minor}\\")' in text, path.name


def test_readme_gives_the_two_commands_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme and "make grade NB=" in readme
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        assert path.name in readme, f"README chapter list misses {path.name}"
    assert re.search(r"^make test$", (ROOT / ".ci/run").read_text(), re.M)


def test_under_load_runner_returns_the_command_exit_code_and_stops_its_burners():
    """`make test-under-load` must end by itself and report the suite's own result."""
    script = str(ROOT / "scripts/under_load.py")
    done = subprocess.run([sys.executable, script, "--burners", "1", "--max-s", "120", "--",
                           sys.executable, "-c", "raise SystemExit(3)"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    pid = int(re.search(r"pids \[(\d+)\]", done.stdout).group(1))
    assert not pathlib.Path(f"/proc/{pid}").exists() or \
        "zombie" in pathlib.Path(f"/proc/{pid}/status").read_text().lower(), "burner still running"
    with pytest.raises(subprocess.CalledProcessError):
        subprocess.run([sys.executable, script, "--burners", "1"], check=True,
                       capture_output=True, timeout=60)


def test_test_module_basenames_are_unique():
    """Test folders have no __init__.py, so pytest imports test files by basename: two
    tests/*/test_x.py would stop the whole suite at collection."""
    import collections
    names = collections.Counter(p.name for p in (ROOT / "tests").rglob("test_*.py"))
    assert not [n for n, c in names.items() if c > 1]
