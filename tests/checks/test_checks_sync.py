"""The exercise checks: they accept the reference, reject known-wrong answers, and give
feedback in steps (message, then hint, then the solution on request)."""
import asyncio
import collections
import random

import aiohttp
import pytest

import labkit
from labkit import checks
from labkit.patterns.backoff import EqualJitter, FullJitter, NoBackoff
from labkit.patterns.budget import RetryBudget
from labkit.patterns.retry import Retry
from labkit.checks import check, evaluate, exercises_for, solution
from wrong_answers import WRONG

#: Chapters with exercises; each one's checks get the same tests.
CHAPTERS = ("01", "05")
ALL_EXERCISES = [ex for chapter in CHAPTERS for ex in exercises_for(chapter)]


def _define(source: str):
    # The names a chapter's Imports cell provides, so a wrong answer reads as it would there.
    namespace = {"aiohttp": aiohttp, "asyncio": asyncio, "random": random, "labkit": labkit,
                 "Retry": Retry, "RetryBudget": RetryBudget, "FullJitter": FullJitter,
                 "EqualJitter": EqualJitter, "NoBackoff": NoBackoff}
    given = set(namespace)
    exec(source, namespace)
    return [v for k, v in namespace.items() if callable(v) and k not in given][0]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_exercise_has_at_least_two_known_wrong_answers(chapter):
    counts = collections.Counter(ex_id for ex_id, _, _ in WRONG)
    assert exercises_for(chapter)
    for ex in exercises_for(chapter):
        assert counts[ex.id] >= 2, ex.id


@pytest.mark.parametrize("ex", ALL_EXERCISES, ids=lambda ex: ex.id)
def test_reference_passes(run, ex):
    result = run(evaluate(ex.id, ex.reference))
    assert result.passed, result


@pytest.mark.parametrize("ex_id, what, source", WRONG, ids=[f"{e}-{w}" for e, w, _ in WRONG])
def test_wrong_answer_is_rejected_with_a_reason(run, ex_id, what, source):
    result = run(evaluate(ex_id, _define(source)))
    assert not result.passed, what
    assert result.message and result.message != "correct"


@pytest.mark.parametrize("ex", ALL_EXERCISES, ids=lambda ex: ex.id)
def test_skeletons_and_non_functions_fail_politely(run, ex):
    import inspect

    async def async_skeleton(*args):
        raise NotImplementedError

    def sync_skeleton(*args):
        raise NotImplementedError
    skeleton = async_skeleton if inspect.iscoroutinefunction(ex.reference) else sync_skeleton
    assert "NotImplementedError" in run(evaluate(ex.id, skeleton)).message
    assert "not defined" in run(evaluate(ex.id, None)).message
    assert "should be a function" in run(evaluate(ex.id, 42)).message


def test_feedback_steps_and_fallback(run, capsys):
    ex = checks.EXERCISES["01.p_slow_page"]
    ex.failures = 0
    wrong = lambda p, n: p * n  # noqa: E731
    first = run(check("01.p_slow_page", wrong))
    out1 = capsys.readouterr().out
    second = run(check("01.p_slow_page", wrong))
    out2 = capsys.readouterr().out
    third = run(check("01.p_slow_page", wrong))
    out3 = capsys.readouterr().out
    assert first is second is third is ex.reference          # later cells use the reference
    assert "not yet" in out1 and "Hint" not in out1 and "reference solution" in out1
    assert "Hint:" in out2 and "solution(" not in out2
    assert 'solution("01.p_slow_page")' in out3
    right = run(check("01.p_slow_page", ex.reference))
    assert right is ex.reference and "correct" in capsys.readouterr().out
    assert checks.RESULTS["01.p_slow_page"].passed
    solution("01.p_slow_page")
    assert "return 1 - (1 - p) ** n" in capsys.readouterr().out


def test_check_passes_the_learners_own_function_through(run):
    def mine(p, n):
        return 1 - (1 - p) ** n
    assert run(check("01.p_slow_page", mine)) is mine


def test_a_check_never_hangs_on_a_hanging_answer(run, monkeypatch):
    monkeypatch.setattr(checks.EXERCISES["01.load_page"], "timeout_s", 0.5)

    async def hangs(fetch, ids):
        await asyncio.sleep(3600)
    result = run(evaluate("01.load_page", hangs))
    assert not result.passed and "gave up after 0.5 s" in result.message


def test_grade_reads_functions_by_name(run):
    ref = {ex.name: ex.reference for ex in exercises_for("01")}
    graded = run(checks.grade({**ref, "p_slow_page": lambda p, n: p}, chapter="01"))
    assert [g["exercise"] for g in graded] == ["01.fetch_user", "01.load_page", "01.p_slow_page"]
    assert [g["passed"] for g in graded] == [True, True, False]


def test_unknown_exercise_is_named():
    with pytest.raises(ValueError, match="unknown exercise '01.nope'"):
        solution("01.nope")
