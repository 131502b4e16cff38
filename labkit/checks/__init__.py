"""Exercises and their checks: instant feedback in the notebook, and grading.

Every chapter uses the same three moves:

1. An exercise cell (tagged ``exercise:<name>``) holds a skeleton the learner fills in.
2. The next cell runs ``impl = await check("01.fetch_user", fetch_user)``. The check says
   what is wrong; from the second failure on it adds a hint; ``solution("01.fetch_user")``
   prints the reference solution. It returns the learner's function when it passes and the
   reference otherwise (and says so), so the rest of the chapter always runs.
3. ``make grade NB=...`` runs the whole notebook and grades each exercise's function by its
   name, whatever the check cells did (see `labkit.checks.grade`).

A check is a function ``test(impl)`` (``async def`` for async answers) that raises `Wrong`
with a message in the learner's terms (and a hint) at the first thing that is not right. The
check never hangs: `labkit.checks.guard` bounds the learner's code. Only attempts that changed
the answer count towards the hint (re-running an unchanged cell, or the untouched skeleton,
does not).
"""
from __future__ import annotations

import asyncio
import collections
import functools
import html
import inspect
import random
import types
from dataclasses import dataclass, field
from typing import Callable

from labkit._core import seeding, validate
from labkit.course.source import show, show_rich
from . import guard


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


def shown(value: float, threshold: float, *, percent: bool = False, digits: int | None = None) -> str:
    """`value` formatted so that it is never shown on the other side of `threshold`.

    98.95 % against an SLO of 99 % prints as "98.95 %", not "99.0 %". `percent=True` shows a
    share (0..1) as a percent (1 decimal at least); otherwise 2 decimals at least.
    """
    scale = 100.0 if percent else 1.0
    v, t = value * scale, round(threshold * scale, 9)
    side = (value > threshold) - (value < threshold)
    d = (1 if percent else 2) if digits is None else digits
    while d < 12:
        r = round(v, d)
        if (r > t) - (r < t) == side:
            break
        d += 1
    return f"{v:.{d}f}" + (" %" if percent else "")


_RUNS: collections.Counter = collections.Counter()


def run_rng(exercise_id: str) -> random.Random:
    """A fresh seeded generator for each run of a check: inputs vary from run to run (so a
    hard-coded answer cannot pass), and the sequence of runs is repeatable per course seed."""
    _RUNS[exercise_id] += 1
    return seeding.rng(f"checks:{exercise_id}:run{_RUNS[exercise_id]}")


def _code_key(code: types.CodeType) -> tuple:
    consts = tuple(_code_key(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts)
    return (code.co_code, code.co_names, code.co_varnames, code.co_freevars,
            code.co_argcount, code.co_kwonlyargcount, consts)


def fingerprint(impl):
    """What the answer *is*, ignoring line numbers and comments (None if unknown).

    Re-running an unchanged exercise cell gives the same fingerprint, so it is not counted as
    a new attempt.
    """
    while isinstance(impl, functools.partial):
        impl = impl.func
    code = getattr(impl, "__code__", None)
    if not isinstance(code, types.CodeType):
        return None
    return _code_key(code), repr(getattr(impl, "__defaults__", None)), \
        repr(getattr(impl, "__kwdefaults__", None))


@dataclass
class Exercise:
    """One exercise: the function name the learner writes, its check and its reference.

    A check is ``async def test(impl)`` for async answers (run on the loop under a watchdog)
    or a plain ``def test(impl)`` for plain answers (run in a worker thread with a hard
    limit): see `labkit.checks.guard`.
    """
    id: str                                   # "01.fetch_user": chapter number . function name
    test: Callable
    reference: Callable
    title: str
    hint: str = ""                            # general hint when a check gives none
    timeout_s: float = 30.0                   # a check never waits longer than this
    blocked_s: float = 5.0                    # the answer may block the event loop this long
    failures: int = field(default=0, compare=False)   # attempts that changed the answer
    _last: object = field(default=None, compare=False, repr=False)

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

    def reset_attempts(self) -> None:
        """Forget the attempts counted so far (the next failure is the first)."""
        self.failures, self._last = 0, None

    def count_attempt(self, impl) -> None:
        """Count a failed answer, unless it is the same answer as the last one counted."""
        key = fingerprint(impl)
        if key is None or key != self._last:
            self.failures += 1
        self._last = key


@dataclass(frozen=True)
class Result:
    """The outcome of one check, as plain data (testbook passes JSON back)."""
    exercise: str
    passed: bool
    message: str
    hint: str = ""
    unanswered: bool = False       # still the skeleton (or undefined): not an attempt

    def as_dict(self) -> dict:
        return {"exercise": self.exercise, "passed": self.passed, "message": self.message,
                "hint": self.hint}


EXERCISES: dict[str, Exercise] = {}
RESULTS: dict[str, Result] = {}        # latest result per exercise in this kernel


def exercise(id: str, *, reference: Callable, title: str, hint: str = "",
             timeout_s: float = 30.0, blocked_s: float = 5.0):
    """Decorator that registers a check function as the check of exercise `id`."""
    def register(test):
        EXERCISES[id] = Exercise(id, test, reference, title, hint,
                                 validate.number("timeout_s", timeout_s, 0, lo_open=True),
                                 validate.number("blocked_s", blocked_s, 0, lo_open=True))
        return test
    return register


def _find(exercise_id: str) -> Exercise:
    _load_chapters()
    try:
        return EXERCISES[exercise_id]
    except KeyError:
        raise ValueError(f"unknown exercise {exercise_id!r}; known: {', '.join(sorted(EXERCISES))}") from None


def raised(err: BaseException) -> str:
    """How a check names an exception the answer raised: "KeyError: 'x'", or for one whose
    str is empty, what happened ("QueueEmpty (you called get_nowait() on an empty queue)") or
    "TypeName (no message)", never a bare colon."""
    name, text = type(err).__name__, str(err)
    if text:
        return f"{name}: {text}"
    if isinstance(err, asyncio.QueueEmpty):
        return f"{name} (you called get_nowait() on an empty queue)"
    if isinstance(err, asyncio.QueueFull):
        return f"{name} (you called put_nowait() on a full queue)"
    return f"{name} (no message)"


class _CheckTimedOut(Exception):
    """The check's own time limit ran out (only this may say "the check gave up")."""


class _AnswerExited(Exception):
    """The answer raised SystemExit (sys.exit(), exit(), quit()) inside an async check: caught
    in the check's task, because asyncio re-raises SystemExit out of the running loop."""


async def _contained(test, impl) -> None:
    try:
        await test(impl)
    except SystemExit as err:
        raise _AnswerExited(err.code) from None


async def _run_async(ex: Exercise, impl, limit_s: float, blocked_s: float) -> None:
    """Run an async check under its time limit, with a watchdog on the event loop."""
    async with guard.LoopWatchdog(impl, blocked_s) as dog:
        task = asyncio.ensure_future(_contained(ex.test, impl))
        try:
            await asyncio.wait({task}, timeout=limit_s)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=5.0)   # let its `finally` clean up
    timed_out = not task.done() or task.cancelled()
    if not timed_out:
        task.exception()                  # retrieved here, so asyncio logs nothing about it
    if dog.interrupted or dog.blocked:
        raise guard.LoopBlocked(dog.longest_s, dog.interrupted)
    if timed_out:
        raise _CheckTimedOut
    task.result()


async def evaluate(exercise_id: str, impl, *, timeout_s: float | None = None,
                   blocked_s: float | None = None) -> Result:
    """Run one check quietly and return its `Result` (used by `check`, grading and tests).

    `timeout_s` (default: the exercise's) bounds the whole check; `blocked_s` is how long an
    async answer may block the event loop before it is interrupted.
    """
    ex = _find(exercise_id)
    limit_s = ex.timeout_s if timeout_s is None else \
        validate.number("timeout_s", timeout_s, 0, lo_open=True, unit=" s")
    blocked = min(ex.blocked_s, limit_s) if blocked_s is None else \
        validate.number("blocked_s", blocked_s, 0, lo_open=True, unit=" s")
    name = f"`{ex.name}`"
    if impl is None or impl is Ellipsis:
        return Result(ex.id, False, f"{name} is not defined yet: fill in the exercise cell.",
                      unanswered=True)
    if not callable(impl):
        return Result(ex.id, False, f"{name} should be a function, got {type(impl).__name__}.")
    try:
        if inspect.iscoroutinefunction(ex.test):
            await _run_async(ex, impl, limit_s, blocked)
        else:
            await guard.in_thread(ex.test, impl, limit_s=limit_s, name=ex.name)
    except Wrong as w:
        return Result(ex.id, False, w.message, w.hint or ex.hint)
    except NotImplementedError:
        return Result(ex.id, False, f"{name} still raises NotImplementedError: "
                                    "replace it with your code.", ex.hint, unanswered=True)
    except _CheckTimedOut:
        return Result(ex.id, False, f"the check gave up after {limit_s:g} s: your {name} kept "
                                    "waiting. Does every network call have a timeout?", ex.hint)
    except guard.DidNotReturn as err:
        if not err.inside_answer:
            return Result(ex.id, False, f"the check gave up after {limit_s:g} s: checking your "
                                        f"{name} took longer than that.", ex.hint)
        return Result(ex.id, False, (
            f"your {name} did not return within {limit_s:g} s, so the check stopped waiting: it "
            "blocks (time.sleep, a loop that never ends, a network call without a timeout?). "
            "Its thread was asked to stop; if it is stuck in one blocking call it runs on in "
            "the background until that call returns (restart the kernel if the notebook gets "
            "slow)."), ex.hint)
    except guard.LoopBlocked as err:
        longest_s, interrupted = err.args
        how_long = f"more than {blocked:g} s" if interrupted else f"{longest_s:.1f} s"
        return Result(ex.id, False, (
            f"your {name} blocked the event loop for {how_long} with a blocking call such as "
            "time.sleep (or requests.get, or a loop that never awaits). While it runs nothing "
            "else in the kernel runs, not even the service it waits for"
            + ("; the check interrupted it." if interrupted else ".")),
            "Inside `async def`, wait with `await asyncio.sleep(...)` and call services with "
            "aiohttp (`await session.get(...)`), never with time.sleep or requests.")
    except (SystemExit, _AnswerExited) as err:
        code = err.code if isinstance(err, SystemExit) else err.args[0]
        return Result(ex.id, False, f"{name} raised SystemExit" + (f" ({code!r})" if code
                                    is not None else "") + ": sys.exit(), exit() and quit() "
                                    "end a program, not a function; return the answer (or "
                                    "raise an exception) instead.", ex.hint)
    except TimeoutError as err:
        detail = f" ({err})" if str(err) else ""
        return Result(ex.id, False, f"your {name} raised TimeoutError{detail}: its own timeout "
                                    "ran out, not the check's time limit.", ex.hint)
    except Exception as err:  # the learner's code crashed: that is feedback, not a crash
        return Result(ex.id, False, f"{name} raised {raised(err)}", ex.hint)
    return Result(ex.id, True, "correct")


async def check(exercise_id: str, impl):
    """Check the learner's `impl`, show feedback, and return the function to use from here on."""
    ex = _find(exercise_id)
    result = await evaluate(exercise_id, impl)
    RESULTS[ex.id] = result
    if result.passed:
        ex.reset_attempts()
        _show(True, f"{ex.title}: correct. Later cells use your `{ex.name}`.")
        return impl
    if not result.unanswered:
        ex.count_attempt(impl)
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


async def grade(namespace: dict, chapter: str | None = None, *, timeout_s: float | None = None,
                blocked_s: float | None = None) -> list[dict]:
    """Grade every exercise of `chapter` (default: all) by the function named like it in
    `namespace`; `timeout_s` and `blocked_s` override the exercises' limits (see `evaluate`)."""
    _load_chapters()
    out = []
    for ex in EXERCISES.values():
        if chapter is not None and ex.chapter != chapter:
            continue
        result = await evaluate(ex.id, namespace.get(ex.name), timeout_s=timeout_s,
                                blocked_s=blocked_s)
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
    from . import messaging  # noqa: F401  (registers chapter 2's exercises)
    from . import protocols  # noqa: F401  (registers chapter 3's exercises)
    from . import serialization  # noqa: F401  (registers chapter 4's exercises)
    from . import retries  # noqa: F401  (registers chapter 5's exercises)
    from . import performance  # noqa: F401  (registers chapter 6's exercises)
    from . import observability  # noqa: F401  (registers chapter 7's exercises)


def _show(passed: bool, text: str) -> None:
    mark = "✓" if passed else "✗"
    color = "#e7f5e9" if passed else "#fdecea"
    body = html.escape(text).replace("\n", "<br>")
    show_rich(f"{mark} {text}", html=f"<div style='background:{color};padding:6px 10px;"
                                      f"border-radius:4px'><b>{mark}</b> {body}</div>")
