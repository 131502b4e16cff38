"""`make grade` (labkit.checks.grade) on a real kernel: a learner's notebook whose answers and
cells block does not hang grading; each blocking answer fails with what it did."""
import subprocess
import sys
import time

import nbformat
import pytest

from notebook_tools import ROOT

CELLS = [
    "import time",
    "def p_slow_page(p, n):\n    while True:\n        pass",
    "time.sleep(1000)    # a cell that blocks the kernel itself",
    "async def load_page(fetch, user_ids):\n    time.sleep(1000)\n    return []",
]


@pytest.mark.timeout(300)
def test_grading_a_notebook_with_blocking_answers_and_cells_finishes(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    path = tmp_path / "01_blocking.ipynb"
    nbformat.write(nb, path)
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "labkit.checks.grade", str(path), "--timeout-s", "10",
                           "--check-limit-s", "2"], cwd=ROOT, capture_output=True, text=True,
                          timeout=280)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - t0 < 250          # the cells block for 1000 s or for ever
    lines = done.stdout.splitlines()
    assert any("01.fetch_user" in line and "not defined" in line for line in lines), lines
    assert any("01.load_page" in line and "blocked the event loop" in line for line in lines), lines
    assert any("01.p_slow_page" in line and "did not return within 2 s" in line for line in lines), lines
    assert "score: 0/3" in lines


def test_grade_refuses_a_bad_limit(tmp_path):
    from labkit.checks.grade import grade_notebook
    with pytest.raises(ValueError, match="check_limit_s"):
        grade_notebook(tmp_path / "01_x.ipynb", check_limit_s=0)
