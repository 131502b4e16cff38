"""Grade a learner's chapter notebook: ``make grade NB=notebooks/01_sync.ipynb``.

Runs the notebook headless with testbook (a failing cell does not stop the run, and a cell
that runs longer than the per-cell timeout is interrupted, so a `time.sleep(1000)` in a
learner's cell does not hang grading), then grades each of the chapter's exercises by the
function the learner defined under the exercise's name, with the same checks the notebook uses
(each bounded by `labkit.checks.guard`: a blocking answer fails, it does not hang). Prints a
score per exercise and the total.
Exit status: 0 when grading ran (whatever the score), 2 when the notebook could not be run.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys

from testbook import testbook

from labkit._core.validate import number
from labkit.checks import exercises_for

GRADE_CODE = """\
import labkit.checks as _labkit_checks
_labkit_grades = await _labkit_checks.grade(globals(), chapter={chapter!r}, timeout_s={limit!r})
"""


def chapter_of(path: pathlib.Path) -> str:
    """"01" for notebooks/01_sync.ipynb."""
    match = re.match(r"(\d\d)_", path.name)
    if not match:
        raise ValueError(f"{path.name}: chapter notebooks are named like 01_sync.ipynb")
    return match.group(1)


def grade_notebook(path: str | pathlib.Path, *, timeout_s: float = 120,
                   check_limit_s: float | None = None) -> list[dict]:
    """Execute the notebook and return one result dict per exercise of its chapter.

    `timeout_s` bounds each cell (a longer one is interrupted and the run goes on);
    `check_limit_s` overrides each check's own time limit (default: the exercise's).
    """
    timeout_s = number("timeout_s", timeout_s, 0, lo_open=True, unit=" s")
    if check_limit_s is not None:
        check_limit_s = number("check_limit_s", check_limit_s, 0, lo_open=True, unit=" s")
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no notebook at {path}")
    chapter = chapter_of(path)
    if not exercises_for(chapter):
        return []
    with testbook(str(path), execute=True, timeout=timeout_s, allow_errors=True,
                  interrupt_on_timeout=True,
                  resources={"metadata": {"path": str(path.parent.resolve())}}) as tb:
        tb.inject(GRADE_CODE.format(chapter=chapter, limit=check_limit_s), pop=True)
        return tb.value("_labkit_grades")


def report(results: list[dict]) -> str:
    lines = []
    for r in results:
        mark = "PASS" if r["passed"] else "FAIL"
        score = 1 if r["passed"] else 0
        lines.append(f"{mark}  {r['exercise']:<22} {score}/1  {'' if r['passed'] else r['message']}")
    total = sum(r["passed"] for r in results)
    lines.append(f"score: {total}/{len(results)}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.checks.grade", description=__doc__.split("\n")[0])
    parser.add_argument("notebook")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--timeout-s", type=float, default=120,
                        help="per-cell timeout (seconds); a longer cell is interrupted")
    parser.add_argument("--check-limit-s", type=float, default=None,
                        help="time limit of each check (seconds; default: the exercise's own)")
    args = parser.parse_args(argv)
    try:
        results = grade_notebook(args.notebook, timeout_s=args.timeout_s,
                                 check_limit_s=args.check_limit_s)
    except (FileNotFoundError, ValueError) as err:
        print(f"grade: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # a cell timed out, the kernel died, ...
        print(f"grade: could not run {args.notebook}: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    if not results:
        print(f"{args.notebook}: this chapter has no graded exercises")
        return 0
    print(json.dumps(results, indent=2) if args.json else report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
