"""Fixtures for the JupyterLab + headless Chromium tests (see lab.py for the harness).

* ``chromium``  path of Debian's Chromium; the test is skipped when it is missing,
                except under CI (env CI=true), where that is a failure.
* ``notebook``  the notebook to drive (the test module parametrizes it).
* ``lab_page``  a private JupyterLab server with that notebook open in a fresh
                headless Chromium profile; server, kernels and browser are shut
                down afterwards, whatever happened in the test.
* ``out_dir``   test-output/<notebook stem>/, for screenshots and the server log.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from . import lab


def _missing(message: str) -> None:
    if lab.running_under_ci():
        pytest.fail(f"{message} [CI=true: a missing browser is a failure, not a skip]",
                    pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def chromium() -> str:
    if importlib.util.find_spec("playwright") is None:
        _missing("Python package playwright not installed: pip install -e '.[dev]'")
    path = lab.find_chromium()
    if path is None:
        _missing(lab.MISSING_CHROMIUM)
    return path


@pytest.fixture
def notebook() -> Path:
    return lab.FIXTURE_NOTEBOOK


@pytest.fixture
def out_dir(notebook: Path) -> Path:
    path = lab.output_dir(Path(notebook).stem)
    for stale in ("lab_before.png", "lab_after.png", "lab_failure.png"):
        (path / stale).unlink(missing_ok=True)
    return path


@pytest.fixture
def lab_page(chromium: str, notebook: Path, out_dir: Path):
    with lab.lab_session(Path(notebook), chromium, out_dir) as page:
        yield page
