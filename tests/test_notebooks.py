"""The five harness properties, on the real chapter notebooks (executed headless):

(a) every notebook runs top to bottom as stored (unsolved exercises fall back);
(b) with the reference solutions in the exercise cells, every check passes;
(c) with known-wrong answers in the exercise cells, every check fails and the notebook
    still runs to the end;
(d) ``make grade NB=...`` grades a learner's notebook and prints a score per exercise;
(e) every cell can be run again, in order and in reverse, and after the shutdown cell.
"""
import re
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from testbook import testbook

from labkit.checks import exercises_for
from notebook_tools import KERNEL, NOTEBOOKS, ROOT, exercise_cells, with_answers
from wrong_answers import WRONG

pytestmark = pytest.mark.notebook
ALL = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
SYNC = NOTEBOOKS / "01_sync.ipynb"
#: Chapters with exercises: (b), (c) and (d) run for each of them.
CHAPTERS = {"01": SYNC, "02": NOTEBOOKS / "02_async_messaging.ipynb",
            "03": NOTEBOOKS / "03_protocols.ipynb", "04": NOTEBOOKS / "04_serialization.ipynb",
            "05": NOTEBOOKS / "05_retries.ipynb", "06": NOTEBOOKS / "06_performance.ipynb",
            "07": NOTEBOOKS / "07_observability.ipynb"}
SCOREBOARD = "[(r['exercise'], r['passed']) for r in __import__('labkit.checks').checks.scoreboard()]"


def _errors(nb):
    return [(i, o.get("ename"), o.get("evalue")) for i, c in enumerate(nb.cells)
            if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_a_notebook_runs_top_to_bottom(path):
    with testbook(str(path), execute=True, timeout=120, kernel_name=KERNEL) as tb:
        assert not _errors(tb.nb)
        chapter = path.name[:2]
        if exercises_for(chapter):
            board = dict(tb.value(SCOREBOARD))
            assert board == {ex.id: False for ex in exercises_for(chapter)}
            text = "".join(o.get("data", {}).get("text/plain", "") for c in tb.nb.cells
                           if c.cell_type == "code" for o in c.outputs)
            assert text.count("uses the reference solution") == len(exercises_for(chapter))


def test_every_exercise_has_its_cell():
    for path in ALL:
        nb = nbformat.read(path, as_version=4)
        names = set(exercise_cells(nb))
        assert names == {ex.name for ex in exercises_for(path.name[:2])}, path.name


def test_every_chapter_with_exercises_is_tested():
    assert set(CHAPTERS) == {p.name[:2] for p in ALL if exercises_for(p.name[:2])}
    assert all(path.is_file() for path in CHAPTERS.values())


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_b_reference_solutions_pass_every_check(tmp_path, chapter):
    answers = {ex.name: ex.reference for ex in exercises_for(chapter)}
    nb = with_answers(CHAPTERS[chapter], answers, tmp_path)
    with testbook(str(nb), execute=True, timeout=120, kernel_name=KERNEL) as tb:
        assert not _errors(tb.nb)
        assert dict(tb.value(SCOREBOARD)) == {ex.id: True for ex in exercises_for(chapter)}


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_c_wrong_answers_fail_every_check_and_the_chapter_still_runs(tmp_path, chapter):
    first_wrong = {}
    for ex_id, _, source in WRONG:
        if ex_id.startswith(chapter + "."):
            first_wrong.setdefault(ex_id.split(".")[1], source)
    assert set(first_wrong) == {ex.name for ex in exercises_for(chapter)}
    nb = with_answers(CHAPTERS[chapter], first_wrong, tmp_path)
    with testbook(str(nb), execute=True, timeout=120, kernel_name=KERNEL) as tb:
        assert not _errors(tb.nb)
        assert dict(tb.value(SCOREBOARD)) == {ex.id: False for ex in exercises_for(chapter)}


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_d_make_grade_prints_a_score_per_exercise(tmp_path, chapter):
    # The reference for every exercise but the last, a known-wrong answer for the last.
    exercises = exercises_for(chapter)
    refs = {ex.name: ex.reference for ex in exercises}
    last = exercises[-1]
    wrong_last = [src for ex_id, _, src in WRONG if ex_id == last.id][0]
    nb = with_answers(CHAPTERS[chapter], {**refs, last.name: wrong_last}, tmp_path)
    done = subprocess.run(["make", "-s", "grade", f"NB={nb}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for ex in exercises[:-1]:
        assert any(line.startswith("PASS") and ex.id in line and "1/1" in line for line in lines), ex.id
    assert any(line.startswith("FAIL") and last.id in line and "0/1" in line for line in lines)
    assert f"score: {len(exercises) - 1}/{len(exercises)}" in lines
    if chapter == "01":      # the original, hand-written expectations for chapter 1
        assert any(line.startswith("PASS") and "01.fetch_user" in line and "1/1" in line for line in lines)
        assert any(line.startswith("PASS") and "01.load_page" in line for line in lines)
        assert any(line.startswith("FAIL") and "01.p_slow_page" in line and "0/1" in line for line in lines)
        assert "score: 2/3" in lines


def test_grade_names_a_missing_notebook():
    done = subprocess.run([sys.executable, "-m", "labkit.checks.grade", "notebooks/nope.ipynb"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no notebook at" in done.stderr


#: Cells whose result must not change when they run again: (notebook, cell id, what to compare).
SAME_WHEN_RUN_AGAIN = {
    ("01_sync.ipynb", "c07"): r"(?m)^(.+?)\s+(\d{3})\s",            # the REST tour's statuses
    ("05_retries.ipynb", "c24"): r"orders created: (\d+)",          # the idempotency demo
    ("02_async_messaging.ipynb", "c04"): r"kitchen: (\{.*\})",       # three orders on the rail
}


def _text(cell) -> str:
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                   for o in cell.get("outputs", []))


def _shutdown_is_last(nb) -> bool:
    code = [c for c in nb.cells if c.cell_type == "code"]
    return "await labkit.shutdown()" in code[-1].source


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_every_chapter_ends_with_its_shutdown_cell(path):
    assert _shutdown_is_last(nbformat.read(path, as_version=4)), path.name


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_e_every_cell_can_run_again_in_any_order(path):
    """A learner re-runs cells: the chapter in order, then every cell again in order (the
    state of the first run still there: created users, used keys, open charts), then every
    cell in reverse order, then the shutdown cell, then the whole chapter once more from the
    top. No cell may raise."""
    nb = nbformat.read(path, as_version=4)
    assert _shutdown_is_last(nb), "the last code cell must be `await labkit.shutdown()`"
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    body, last = code[:-1], code[-1]
    passes = [("first run", body), ("again, in order", body), ("again, in reverse", body[::-1]),
              ("shutdown", [last]), ("after shutdown, from the top", code)]
    watched = {nb.cells[i].get("id"): pattern for (name, cid), pattern in SAME_WHEN_RUN_AGAIN.items()
               for i in code if name == path.name and nb.cells[i].get("id") == cid}
    seen = {cid: [] for cid in watched}
    client = NotebookClient(nb, kernel_name=KERNEL, timeout=120, allow_errors=False,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    with client.setup_kernel():
        for label, cells in passes:
            for i in cells:
                try:
                    client.execute_cell(nb.cells[i], i)
                except CellExecutionError as err:
                    pytest.fail(f"{path.name}, {label}: cell {i} raised\n{nb.cells[i].source}\n{err}")
                cid = nb.cells[i].get("id")
                if cid in watched:
                    seen[cid].append((label, re.findall(watched[cid], _text(nb.cells[i]))))
    for cid, runs in seen.items():
        first = runs[0][1]
        assert first, f"{path.name} cell {cid}: nothing to compare in its output"
        for label, got in runs[1:]:
            assert got == first, f"{path.name} cell {cid} printed something else when run {label}: {got} != {first}"


#: What each exercise needs taught first: a code cell using it must come before the exercise.
NEEDS = {("01_sync.ipynb", "fetch_user"): "aiohttp.ClientTimeout(",
         ("02_async_messaging.ipynb", "handle_ticket"): ".nack(requeue=True)"}
#: What would give an exercise's answer away if a code cell before the exercise showed it.
GIVEAWAYS = {("01_sync.ipynb", "fetch_user"): "raise_for_status(",
             ("01_sync.ipynb", "load_page"): "asyncio.gather(",
             ("01_sync.ipynb", "p_slow_page"): "(1 - p) **",
             ("05_retries.ipynb", "full_jitter"): "uniform(0",
             ("02_async_messaging.ipynb", "handle_ticket"): "reject(requeue=False)",
             ("02_async_messaging.ipynb", "charge_once"): "seen.add(",
             ("02_async_messaging.ipynb", "publish_event"): "get_nowait(",
             ("03_protocols.ipynb", "score_protocol"): "is True",
             ("03_protocols.ipynb", "grpc_code_for"): "\"UNIMPLEMENTED\"",
             ("03_protocols.ipynb", "follow_events"): "raise EventGap(",
             ("04_serialization.ipynb", "to_json_default"): "b64encode(",
             ("04_serialization.ipynb", "migration_path"): "deque(",
             ("04_serialization.ipynb", "choose_format"): "\"avro\" if",
             ("06_performance.ipynb", "collect_batch"): "wait_for(queue.get(",
             ("06_performance.ipynb", "single_flight"): "shield(",
             ("06_performance.ipynb", "hedge_delay"): "1 - budget_extra",
             ("07_observability.ipynb", "parse_traceparent"): "fullmatch(",
             ("07_observability.ipynb", "slowest_on_critical_path"): "self_time(",
             ("07_observability.ipynb", "keep_trace"): "<= spans_left"}


def _code_before(nb, cell) -> list[str]:
    index = nb.cells.index(cell)
    return [c.source for c in nb.cells[:index] if c.cell_type == "code"]


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_no_cell_shows_a_solution(path):
    nb = nbformat.read(path, as_version=4)
    shown = [c.source for c in nb.cells if c.cell_type == "code" and "solution(" in c.source]
    assert not shown, f"{path.name} prints a reference solution: {shown}"


@pytest.mark.parametrize("key", sorted(NEEDS), ids=lambda k: "-".join(k))
def test_an_exercise_comes_after_what_it_needs(key):
    path, name = NOTEBOOKS / key[0], key[1]
    nb = nbformat.read(path, as_version=4)
    assert any(NEEDS[key] in src for src in _code_before(nb, exercise_cells(nb)[name])), \
        f"{key}: no cell before the exercise uses {NEEDS[key]}"


@pytest.mark.parametrize("key", sorted(GIVEAWAYS), ids=lambda k: "-".join(k))
def test_no_cell_before_an_exercise_gives_its_answer_away(key):
    path, name = NOTEBOOKS / key[0], key[1]
    nb = nbformat.read(path, as_version=4)
    assert not [src for src in _code_before(nb, exercise_cells(nb)[name]) if GIVEAWAYS[key] in src]
