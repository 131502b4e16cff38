"""The exercise checks: they accept the reference and unusual right answers, reject known-wrong
answers with a true message, give feedback in steps (message, then hint, then the solution on
request), and come back after their limit whatever the learner's code does."""
import asyncio
import collections
import inspect
import math
import random
import time

import aiohttp
import pytest
import requests

import labkit
from labkit import checks
from labkit.patterns.backoff import EqualJitter, FullJitter, NoBackoff
from labkit.patterns.budget import RetryBudget
from labkit.patterns.retry import Retry
from labkit.checks import check, evaluate, exercises_for, solution
from wrong_answers import BLOCKING, RIGHT, WHY, WRONG

#: Chapters with exercises; each one's checks get the same tests.
CHAPTERS = ("01", "05")
ALL_EXERCISES = [ex for chapter in CHAPTERS for ex in exercises_for(chapter)]
CHAPTER1 = [w for w in WRONG if w[0].startswith("01.")]


def _define(source: str, exercise_id: str | None = None):
    """The learner's function defined by `source`, with the names a chapter's imports cell
    provides (so a wrong answer reads as it would there)."""
    namespace = {"aiohttp": aiohttp, "asyncio": asyncio, "random": random, "time": time,
                 "math": math, "requests": requests, "labkit": labkit,
                 "Retry": Retry, "RetryBudget": RetryBudget, "FullJitter": FullJitter,
                 "EqualJitter": EqualJitter, "NoBackoff": NoBackoff}
    given = set(namespace)
    exec(source, namespace)
    if exercise_id is not None:
        return namespace[exercise_id.split(".", 1)[1]]
    return [v for k, v in namespace.items() if callable(v) and k not in given][0]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_exercise_has_known_wrong_and_right_answers(chapter):
    wrong = collections.Counter(ex_id for ex_id, _, _ in WRONG)
    right = collections.Counter(ex_id for ex_id, _, _ in RIGHT)
    assert exercises_for(chapter)
    for ex in exercises_for(chapter):
        assert wrong[ex.id] >= 2 and right[ex.id] >= 1, ex.id
    assert set(WHY) == {what for _, what, _ in WRONG}


@pytest.mark.parametrize("ex", ALL_EXERCISES, ids=lambda ex: ex.id)
def test_reference_passes(run, ex):
    result = run(evaluate(ex.id, ex.reference))
    assert result.passed, result


@pytest.mark.parametrize("ex_id, what, source", RIGHT, ids=[f"{e}-{w}" for e, w, _ in RIGHT])
def test_unusual_right_answer_passes(run, ex_id, what, source):
    result = run(evaluate(ex_id, _define(source, ex_id)))
    assert result.passed, result.message


@pytest.mark.parametrize("ex_id, what, source", CHAPTER1, ids=[w for _, w, _ in CHAPTER1])
def test_wrong_answer_is_rejected_for_its_reason(run, ex_id, what, source):
    result = run(evaluate(ex_id, _define(source, ex_id)))
    assert not result.passed, what
    assert WHY[what] in result.message, result.message
    assert "the check gave up" not in result.message     # only the check's own limit says that


@pytest.mark.parametrize("ex", ALL_EXERCISES, ids=lambda ex: ex.id)
def test_skeletons_and_non_functions_fail_politely(run, ex):
    async def async_skeleton(*args):
        raise NotImplementedError

    def sync_skeleton(*args):
        raise NotImplementedError
    skeleton = async_skeleton if inspect.iscoroutinefunction(ex.reference) else sync_skeleton
    skeleton.__signature__ = inspect.signature(ex.reference)    # as in the exercise cell
    result = run(evaluate(ex.id, skeleton))
    assert "NotImplementedError" in result.message and result.unanswered
    assert "not defined" in run(evaluate(ex.id, None)).message
    assert "should be a function" in run(evaluate(ex.id, 42)).message


def test_feedback_steps_and_fallback(run, capsys):
    ex = checks.EXERCISES["01.p_slow_page"]
    ex.reset_attempts()
    first = run(check("01.p_slow_page", lambda p, n: p * n))
    out1 = capsys.readouterr().out
    second = run(check("01.p_slow_page", lambda p, n: p ** n))
    out2 = capsys.readouterr().out
    third = run(check("01.p_slow_page", lambda p, n: p))
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


def test_untouched_skeleton_and_unchanged_answers_do_not_count_as_attempts(run, capsys):
    ex = checks.EXERCISES["01.p_slow_page"]
    ex.reset_attempts()
    skeleton = "def p_slow_page(p, n):\n    # your code here\n    raise NotImplementedError\n"
    run(check("01.p_slow_page", _define(skeleton)))         # Run All, before any answer
    assert "NotImplementedError" in capsys.readouterr().out
    run(check("01.p_slow_page", _define("def p_slow_page(p, n):\n    return p * n\n")))
    first_try = capsys.readouterr().out
    assert "not yet" in first_try and "Hint:" not in first_try
    # The same answer again (cell re-run, a comment added): not a new attempt.
    run(check("01.p_slow_page", _define("def p_slow_page(p, n):\n    # sure?\n    return p * n\n")))
    assert "Hint:" not in capsys.readouterr().out
    run(check("01.p_slow_page", _define("def p_slow_page(p, n):\n    return p ** n\n")))
    assert "Hint:" in capsys.readouterr().out               # a changed answer: second attempt


def test_check_passes_the_learners_own_function_through(run):
    def mine(p, n):
        return 1 - (1 - p) ** n
    assert run(check("01.p_slow_page", mine)) is mine


def test_a_check_never_hangs_on_a_hanging_answer(run):
    async def hangs(fetch, ids):
        await asyncio.sleep(3600)
    result = run(evaluate("01.load_page", hangs, timeout_s=0.5))
    assert not result.passed and "gave up after 0.5 s" in result.message


def test_a_learners_timeout_error_is_not_the_checks_time_limit(run):
    async def load_page(fetch, user_ids):
        raise asyncio.TimeoutError
    result = run(evaluate("01.load_page", load_page))
    assert not result.passed
    assert "raised TimeoutError" in result.message and "gave up" not in result.message


@pytest.mark.timeout(120)
@pytest.mark.parametrize("ex_id, what, source, fragment", BLOCKING,
                         ids=[f"{e}-{w}" for e, w, _, _ in BLOCKING])
def test_a_blocking_answer_comes_back_after_the_limit(run, ex_id, what, source, fragment):
    # Each answer blocks for 100 s or forever; the check must come back after its limit.
    t0 = time.monotonic()
    result = run(evaluate(ex_id, _define(source, ex_id), timeout_s=1.0, blocked_s=0.5))
    assert time.monotonic() - t0 < 40
    assert not result.passed and fragment in result.message, result.message


def test_grade_reads_functions_by_name(run):
    ref = {ex.name: ex.reference for ex in exercises_for("01")}
    graded = run(checks.grade({**ref, "p_slow_page": lambda p, n: p}, chapter="01"))
    assert [g["exercise"] for g in graded] == ["01.fetch_user", "01.load_page", "01.p_slow_page"]
    assert [g["passed"] for g in graded] == [True, True, False]


@pytest.mark.timeout(120)
def test_grade_is_safe_with_blocking_answers(run):
    first = {}
    for ex_id, _, source, fragment in BLOCKING:
        if ex_id.startswith("01."):
            first.setdefault(ex_id, (_define(source, ex_id), fragment))
    namespace = {ex_id.split(".")[1]: fn for ex_id, (fn, _) in first.items()}
    graded = run(checks.grade(namespace, chapter="01", timeout_s=1.0, blocked_s=0.5))
    assert [g["passed"] for g in graded] == [False, False, False]
    for g in graded:
        assert first[g["exercise"]][1] in g["message"], g


def test_unknown_exercise_is_named():
    with pytest.raises(ValueError, match="unknown exercise '01.nope'"):
        solution("01.nope")


def test_limits_are_checked(run):
    with pytest.raises(ValueError, match="timeout_s"):
        run(evaluate("01.p_slow_page", lambda p, n: p, timeout_s=0))
    with pytest.raises(ValueError, match="blocked_s"):
        run(evaluate("01.p_slow_page", lambda p, n: p, blocked_s=-1))


# -- chapter 1 specifics --------------------------------------------------------------------

def test_fetch_user_gets_timeouts_on_both_sides_of_the_slow_service_drawn_per_run(run):
    from labkit.checks import sync
    seen = []

    async def spy(session, base_url, user_id, timeout_s):
        seen.append(timeout_s)
        return await sync.fetch_user(session, base_url, user_id, timeout_s)
    assert run(evaluate("01.fetch_user", spy)).passed
    first, seen[:] = list(seen), []
    assert run(evaluate("01.fetch_user", spy)).passed
    give_up = [t for t in first if t < sync.SLOW_SERVICE_S - 0.2]
    assert len([t for t in give_up if t <= 0.17]) >= 1          # below a 0.3-s floor
    assert len([t for t in give_up if 0.6 < t < 1.0]) >= 1      # above a 0.5-s ceiling
    assert len([t for t in first if t > sync.QUICK_SERVICE_S + 0.3]) >= 2   # must succeed
    assert sorted(first) != sorted(seen)                     # drawn afresh for every run


def test_fetch_user_late_give_up_is_measured_again_before_failing(run, monkeypatch):
    # A busy machine may fire a timer late once; a right answer late once still passes, an
    # answer that is late every time fails and says how late.
    from labkit.checks import sync
    calls = []

    async def late_once(session, base_url, user_id, timeout_s):
        calls.append(timeout_s)
        if len(calls) == 4:                      # the first timeout case: late this once
            await asyncio.sleep(timeout_s + 0.3)
            raise asyncio.TimeoutError
        return await sync.fetch_user(session, base_url, user_id, timeout_s)
    monkeypatch.setattr(sync, "QUICK_SERVICE_S", sync.SLOW_SERVICE_S)   # every case gives up
    result = run(evaluate("01.fetch_user", late_once))
    assert result.passed, result.message
    assert len(calls) == 3 + 5 + 1      # 3 plain calls, 5 timeout cases, 1 measured again


def test_fetch_user_check_resets_its_faults_even_when_the_answer_crashes(run, monkeypatch):
    from labkit.checks import sync
    states = []
    stop = sync.Service.stop

    async def recording_stop(self):
        states.append(self.faults.all_off)
        await stop(self)
    monkeypatch.setattr(sync.Service, "stop", recording_stop)
    from labkit.checks.sync import fetch_user as ref

    async def crashes_when_slow(session, base_url, user_id, timeout_s):
        if timeout_s < 0.3:
            raise RuntimeError("boom")
        return await ref(session, base_url, user_id, timeout_s)
    result = run(evaluate("01.fetch_user", crashes_when_slow))
    assert not result.passed and "RuntimeError" in result.message
    assert states == [True]


def test_load_page_says_how_many_calls_it_saw_at_once(run):
    async def batches_of_three(fetch, user_ids):
        out = []
        for i in range(0, len(user_ids), 3):
            out += await asyncio.gather(*(fetch(u) for u in user_ids[i:i + 3]))
        return out
    result = run(evaluate("01.load_page", batches_of_three))
    assert not result.passed and "at most 3 calls at a time" in result.message
    assert "one call at a time" not in result.message


def test_p_slow_page_percentage_gets_no_adding_hint(run):
    result = run(evaluate("01.p_slow_page", lambda p, n: 100 * (1 - (1 - p) ** n)))
    assert "looks like a percentage" in result.message
    assert "Adding" not in result.hint and "adding" not in result.message


def test_a_blocked_loop_off_the_main_thread_is_measured_and_reported():
    # No signal can reach a loop outside the main thread: the block is measured and reported
    # once the answer returns, and the answer fails even though its result is right.
    import threading
    source = ("async def load_page(fetch, user_ids):\n    time.sleep(1.0)\n"
              "    return list(await asyncio.gather(*(fetch(u) for u in user_ids)))\n")
    impl, out = _define(source, "01.load_page"), []
    worker = threading.Thread(target=lambda: out.append(
        asyncio.run(evaluate("01.load_page", impl, blocked_s=0.3))))
    worker.start()
    worker.join(60)
    assert out and not out[0].passed
    assert "blocked the event loop for" in out[0].message
    assert "interrupted" not in out[0].message
