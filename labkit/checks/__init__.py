"""Exercises and their checks: instant feedback in the notebook, and grading.

Every chapter uses the same three moves:

1. An exercise cell (tagged ``exercise:<name>``) holds a skeleton the learner fills in.
2. The next cell runs ``impl = await check("01.fetch_user", fetch_user)``. The check says
   what is wrong; from the second failure on it adds a hint; ``solution("01.fetch_user")``
   prints the reference solution. It returns the learner's function when it passes and the
   reference otherwise (and says so), so the rest of the chapter always runs.
3. ``make grade NB=...`` runs the whole notebook and grades each exercise's function by its
   name, whatever the check cells did (see `labkit.checks.grade`).

A check is an async function ``test(impl)`` that raises `Wrong` with a message in the
learner's terms (and a hint) at the first thing that is not right.
"""
from __future__ import annotations

import asyncio
import html
import inspect
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from labkit.course.source import show, show_rich


class Wrong(Exception):
    """Raised by a check: `message` says what is wrong, `hint` how to fix it."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message, self.hint = message, hint


def plain(got, why: str):
    """Return `got`, or raise `Wrong(why)` if it is awaitable: the exercise wants a plain `def`.

    A coroutine that is never awaited is closed, so it leaves no "never awaited" warning.
    """
    if inspect.isawaitable(got):
        if inspect.iscoroutine(got):
            got.close()
        raise Wrong(why)
    return got


@dataclass
class Exercise:
    """One exercise: the function name the learner writes, its check and its reference."""
    id: str                                   # "01.fetch_user": chapter number . function name
    test: Callable[[Callable], Awaitable[None]]
    reference: Callable
    title: str
    hint: str = ""                            # general hint when a check gives none
    timeout_s: float = 30.0                   # a check never waits longer than this
    failures: int = field(default=0, compare=False)

    @property
    def name(self) -> str:
        return self.id.split(".", 1)[1]

    @property
    def chapter(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def tag(self) -> str:
        """The notebook cell tag of the exercise cell."""
        return f"exercise:{self.name}"


@dataclass(frozen=True)
class Result:
    """The outcome of one check, as plain data (testbook passes JSON back)."""
    exercise: str
    passed: bool
    message: str
    hint: str = ""

    def as_dict(self) -> dict:
        return {"exercise": self.exercise, "passed": self.passed, "message": self.message,
                "hint": self.hint}


EXERCISES: dict[str, Exercise] = {}
RESULTS: dict[str, Result] = {}        # latest result per exercise in this kernel


def exercise(id: str, *, reference: Callable, title: str, hint: str = "",
             timeout_s: float = 30.0):
    """Decorator that registers a check function as the check of exercise `id`."""
    def register(test):
        EXERCISES[id] = Exercise(id, test, reference, title, hint, timeout_s)
        return test
    return register


def _find(exercise_id: str) -> Exercise:
    _load_chapters()
    try:
        return EXERCISES[exercise_id]
    except KeyError:
        raise ValueError(f"unknown exercise {exercise_id!r}; known: {', '.join(sorted(EXERCISES))}") from None


async def evaluate(exercise_id: str, impl) -> Result:
    """Run one check quietly and return its `Result` (used by `check`, grading and tests)."""
    ex = _find(exercise_id)
    if impl is None or impl is Ellipsis:
        return Result(ex.id, False, f"`{ex.name}` is not defined yet: fill in the exercise cell.")
    if not callable(impl):
        return Result(ex.id, False, f"`{ex.name}` should be a function, got {type(impl).__name__}.")
    try:
        await asyncio.wait_for(ex.test(impl), ex.timeout_s)
    except Wrong as w:
        return Result(ex.id, False, w.message, w.hint or ex.hint)
    except NotImplementedError:
        return Result(ex.id, False, f"`{ex.name}` still raises NotImplementedError: "
                                    "replace it with your code.", ex.hint)
    except asyncio.TimeoutError:
        return Result(ex.id, False, f"the check gave up after {ex.timeout_s:g} s: your `{ex.name}` "
                                    "kept waiting. Does every network call have a timeout?", ex.hint)
    except Exception as err:  # the learner's code crashed: that is feedback, not a crash
        return Result(ex.id, False, f"`{ex.name}` raised {type(err).__name__}: {err}", ex.hint)
    return Result(ex.id, True, "correct")


async def check(exercise_id: str, impl):
    """Check the learner's `impl`, show feedback, and return the function to use from here on."""
    ex = _find(exercise_id)
    result = await evaluate(exercise_id, impl)
    RESULTS[ex.id] = result
    if result.passed:
        ex.failures = 0
        _show(True, f"{ex.title}: correct. Later cells use your `{ex.name}`.")
        return impl
    ex.failures += 1
    text = f"{ex.title}: not yet. {result.message}"
    if ex.failures >= 2 and result.hint:
        text += f"\nHint: {result.hint}"
    if ex.failures >= 3:
        text += f'\nStuck? solution("{ex.id}") shows the reference solution.'
    text += "\n(The rest of the chapter uses the reference solution until this passes.)"
    _show(False, text)
    return ex.reference


def solution(exercise_id: str) -> None:
    """Show the reference solution's source."""
    show(_find(exercise_id).reference)


async def grade(namespace: dict, chapter: str | None = None) -> list[dict]:
    """Grade every exercise of `chapter` (default: all whose function is in `namespace`)."""
    _load_chapters()
    out = []
    for ex in EXERCISES.values():
        if chapter is not None and ex.chapter != chapter:
            continue
        result = await evaluate(ex.id, namespace.get(ex.name))
        out.append(result.as_dict())
    return out


def scoreboard() -> list[dict]:
    """The latest check results in this kernel."""
    return [r.as_dict() for r in RESULTS.values()]


def exercises_for(chapter: str) -> list[Exercise]:
    """The exercises of one chapter ("01"), in the order they were registered."""
    _load_chapters()
    return [ex for ex in EXERCISES.values() if ex.chapter == chapter]


def _load_chapters() -> None:
    from . import sync  # noqa: F401  (registers chapter 1's exercises)
    from . import retries  # noqa: F401  (registers chapter 5's exercises)


def _show(passed: bool, text: str) -> None:
    mark = "✓" if passed else "✗"
    color = "#e7f5e9" if passed else "#fdecea"
    body = html.escape(text).replace("\n", "<br>")
    show_rich(f"{mark} {text}", html=f"<div style='background:{color};padding:6px 10px;"
                                      f"border-radius:4px'><b>{mark}</b> {body}</div>")
