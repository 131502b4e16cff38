"""Chapter 06's hedge_delay check (labkit/checks/perf_hedge.py): the reference passes run
after run, each known-wrong answer is rejected for its own reason, unusual right answers
(other percentile definitions) pass, and the untouched skeleton gets the standard message."""
import collections

import numpy as np
import pytest

from labkit import checks
from labkit.checks import evaluate
from labkit.checks import perf_hedge
from check_corpus import corpus_tests
from test_checks_sync import _define
from wrong_answers import RIGHT, WHY, WRONG

MINE = ("06.hedge_delay",)

SKELETONS = {
    "06.hedge_delay": '''
def hedge_delay(latencies_ms, budget_extra):
    """The delay (ms) after which to send a hedge so that a share `budget_extra` (e.g. 0.05)
    of requests get one, from a list of observed latencies in ms."""
    # your code here
    raise NotImplementedError
''',
}

(test_wrong_answer_is_rejected_for_its_reason, test_unusual_right_answer_passes,
 test_untouched_skeleton_gets_the_standard_message) = corpus_tests(MINE, SKELETONS)


def test_registered_with_a_title_and_hint():
    ex = checks.EXERCISES["06.hedge_delay"]
    assert ex.title and ex.hint and ex.reference is perf_hedge.hedge_delay


def test_corpus_covers_the_exercise():
    assert sum(w[0] in MINE for w in WRONG) >= 10
    assert sum(r[0] in MINE for r in RIGHT) >= 5
    assert {what for ex, what, _ in WRONG if ex in MINE} <= set(WHY)


def test_reference_passes_run_after_run(run):
    for _ in range(5):
        result = run(evaluate("06.hedge_delay", perf_hedge.hedge_delay))
        assert result.passed, result.message


def test_inputs_change_from_run_to_run():
    a = perf_hedge._cases(perf_hedge.run_rng("06.hedge_delay"))
    b = perf_hedge._cases(perf_hedge.run_rng("06.hedge_delay"))
    assert [c.sample for c in a] != [c.sample for c in b]
    assert len({c.n for c in a}) >= 4 and len({c.budget for c in a}) >= 3


def test_cases_keep_every_named_mistake_outside_the_accepted_range():
    for _ in range(20):
        for case in perf_hedge._cases(perf_hedge.run_rng("06.hedge_delay")):
            assert case.separated()
            right = perf_hedge.hedge_delay(case.sample, case.budget)
            assert perf_hedge._inside(right, case.right)
            assert perf_hedge._inside(float(np.percentile(case.sample,
                                                          100 * (1 - case.budget))), case.right)


@pytest.mark.parametrize("source, fragment", [
    ("def hedge_delay(latencies_ms, budget_extra):\n    return 'fast'\n", "a number"),
    ("def hedge_delay(latencies_ms, budget_extra):\n    return latencies_ms[99999]\n",
     "IndexError"),
])
def test_odd_answers_get_a_plain_message(run, source, fragment):
    ns = {}
    exec(source, ns)
    result = run(evaluate("06.hedge_delay", ns["hedge_delay"]))
    assert not result.passed and fragment in result.message


def test_a_hanging_answer_is_stopped_within_a_few_seconds():
    # pure arithmetic on <= 200 numbers: the reference takes milliseconds
    assert checks.EXERCISES["06.hedge_delay"].timeout_s <= 5.0


def _fixed_case(order_seed=0):
    """20 latencies whose p90 lies between 13.21 and 13.30 ms: rounding to whole ms gives 13,
    outside every percentile definition."""
    import random
    xs = [1.0 + 0.5 * k for k in range(16)] + [13.0, 13.21, 13.3, 40.0]
    random.Random(order_seed).shuffle(xs)
    return perf_hedge._Case(xs, 0.1)


def test_a_delay_rounded_to_whole_ms_is_told_not_to_round():
    def rounded(latencies_ms, budget_extra):
        return round(float(np.percentile(latencies_ms, 100 * (1 - budget_extra))))
    case = _fixed_case()
    assert not perf_hedge._inside(13.0, case.right)
    with pytest.raises(checks.Wrong, match="whole number.*don't round"):
        perf_hedge._judge(rounded, case)


def test_a_whole_sample_element_is_not_called_rounded():
    def off_by_one(latencies_ms, budget_extra):          # returns xs[16] = 13.0 ms, whole
        return sorted(latencies_ms)[int(len(latencies_ms) * (1 - budget_extra)) - 2]
    case = _fixed_case()
    with pytest.raises(checks.Wrong) as err:
        perf_hedge._judge(off_by_one, case)
    assert "don't round" not in err.value.message and "one too low" in err.value.message


# After a second beginner's run (/work/notes/reports/t6b.md, BUG 4 and BUG 8) -------------

def test_a_delay_rounded_into_the_accepted_range_is_still_told_not_to_round():
    def rounded(latencies_ms, budget_extra):
        return round(float(np.percentile(latencies_ms, 100 * (1 - budget_extra))))
    xs = [1.0 + 0.5 * k for k in range(16)] + [12.6, 12.9, 13.3, 40.0]
    case = perf_hedge._Case(xs, 0.1)
    assert perf_hedge._inside(13.0, case.right)        # a lucky round lands inside
    with pytest.raises(checks.Wrong, match="whole number both times.*don't round"):
        perf_hedge._judge(rounded, case)


def test_a_whole_position_inside_the_range_is_not_called_rounded():
    def position(latencies_ms, budget_extra):           # 18, the same when doubled
        return int(len(latencies_ms) * (1 - budget_extra))
    case = perf_hedge._Case([1.0 + k for k in range(16)] + [17.5, 18.0, 18.4, 40.0], 0.1)
    assert perf_hedge._inside(18.0, case.right)
    perf_hedge._judge(position, case)                    # passes this case; others catch it


def test_every_run_has_a_sample_with_under_one_hedge_and_one_of_repeated_values():
    for _ in range(20):
        cases = perf_hedge._cases(perf_hedge.run_rng("06.hedge_delay"))
        tiny = [c for c in cases if c.n * c.budget < 1]
        tied = [c for c in cases if c.tied]
        assert len(tiny) == 1 and len(tied) == 1
        (t,) = tied
        lo, hi = t.right                                 # every definition agrees there
        assert lo == hi == float(np.percentile(t.sample, 100 * (1 - t.budget)))
        assert lo == round(lo) and t.hedged(lo) <= t.budget * t.n
        assert not perf_hedge._inside(perf_hedge._range(t.distinct, 1 - t.budget)[0], t.right)


def _run_many(run, source, times):
    fn = _define(source, "06.hedge_delay")
    return [run(evaluate("06.hedge_delay", fn)) for _ in range(times)]


_EVERY_RUN = [w for w in WRONG if w[0] in MINE and w[1] in {
    "rounded to whole ms with round()", "truncated to whole ms with int()",
    "drops the slowest int(n * budget) with [:-k], then the max",
    "drops repeated latencies with set()"}]
_RIGHT_EVERY_RUN = [r for r in RIGHT if r[0] in MINE and r[1] in {
    "rounded to 0.1 ms", "nearest rank (1-based, converted)",
    "statistics.quantiles, exclusive (its default)", "index int(n * p) into the sorted list"}]


@pytest.mark.parametrize("ex_id, what, source", _EVERY_RUN, ids=[w[1] for w in _EVERY_RUN])
def test_these_wrong_answers_fail_on_every_run(run, ex_id, what, source):
    for result in _run_many(run, source, 25):           # not only on some inputs
        assert not result.passed and WHY[what] in result.message, result.message


@pytest.mark.parametrize("ex_id, what, source", _RIGHT_EVERY_RUN,
                         ids=[r[1] for r in _RIGHT_EVERY_RUN])
def test_these_right_answers_pass_on_every_run(run, ex_id, what, source):
    for result in _run_many(run, source, 25):
        assert result.passed, result.message


@pytest.mark.parametrize("what", ["truncated to whole ms with int()",
                                  "rounded to whole ms with round()"])
def test_the_notebooks_first_check_rejects_rounding(run, monkeypatch, what):
    # run_rng's first run has the same seed in every session: it is the notebook's first check
    monkeypatch.setattr(checks, "_RUNS", collections.Counter())
    (source,) = [w[2] for w in WRONG if w[0] in MINE and w[1] == what]
    (result,) = _run_many(run, source, 1)
    assert not result.passed and "don't round" in result.message
