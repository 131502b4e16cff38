"""Headless execution time of each chapter notebook (target: <= 20 s per chapter on 2 cores).

The baseline, measured in the same run, is a one-cell notebook that only starts the kernel
and imports labkit; each chapter is reported in seconds and as a multiple of that baseline.

    .venv/bin/python benchmarks/bench_notebooks.py
"""
from __future__ import annotations

import pathlib
import time

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run_notebook(nb, cwd: pathlib.Path) -> float:
    start = time.perf_counter()
    NotebookClient(nb, timeout=300, kernel_name="labkit",
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return time.perf_counter() - start


def main() -> dict:
    notebooks = ROOT / "notebooks"
    baseline_nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import labkit")])
    baseline = run_notebook(baseline_nb, notebooks)
    print(f"  baseline (kernel start + import labkit): {baseline:5.1f} s")
    times = {}
    for path in sorted(notebooks.glob("[0-9][0-9]_*.ipynb")):
        times[path.name] = run_notebook(nbformat.read(path, as_version=4), notebooks)
        verdict = "ok" if times[path.name] <= 20 else "over target"
        print(f"  {path.name:<28} {times[path.name]:5.1f} s  "
              f"({times[path.name] / baseline:4.1f}x baseline; target <= 20 s: {verdict})")
    return {"baseline_s": baseline, "notebooks_s": times}


if __name__ == "__main__":
    main()
