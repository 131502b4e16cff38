"""`solution()` prints an exercise's reference and the notebook tests paste it into the exercise
cell: it must run on its own, with only what the chapter's first code cell imports (a reference
that leans on its module's globals raises NameError for the learner who copies it)."""
import asyncio
import inspect
import textwrap

import pytest

import labkit
from labkit import checks
from labkit.checks import evaluate

#: What chapters 06 and 07 import in their first code cell.
HEAD = {"asyncio": asyncio, "labkit": labkit, "check": checks.check, "solution": checks.solution}
IDS = [ex.id for ch in ("06", "07") for ex in checks.exercises_for(ch)]


@pytest.mark.parametrize("ex_id", IDS)
def test_the_printed_reference_passes_its_check_on_its_own(run, ex_id):
    ex = checks.EXERCISES[ex_id]
    namespace = dict(HEAD)
    exec(textwrap.dedent(inspect.getsource(ex.reference)), namespace)
    result = run(evaluate(ex_id, namespace[ex.reference.__name__]))
    assert result.passed, result.message
