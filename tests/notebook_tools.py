"""Helpers for the notebook tests: find exercise cells and put other code in them."""
import inspect
import pathlib
import textwrap

import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
KERNEL = "labkit"


def exercise_cells(nb) -> dict:
    """{exercise name: cell} for cells tagged ``exercise:<name>``."""
    found = {}
    for cell in nb.cells:
        for tag in cell.get("metadata", {}).get("tags", []):
            if tag.startswith("exercise:"):
                found[tag.split(":", 1)[1]] = cell
    return found


def with_answers(path, answers: dict, out_dir) -> pathlib.Path:
    """A copy of notebook `path` whose exercise cells hold `answers` ({name: source or function})."""
    nb = nbformat.read(path, as_version=4)
    cells = exercise_cells(nb)
    for name, answer in answers.items():
        source = answer if isinstance(answer, str) else textwrap.dedent(inspect.getsource(answer))
        cells[name].source = source.strip() + "\n"
    out = pathlib.Path(out_dir) / pathlib.Path(path).name
    nbformat.write(nb, out)
    return out
