"""Chapter 06's hedge_delay check (labkit/checks/perf_hedge.py): the reference passes run
after run, each known-wrong answer is rejected for its own reason, unusual right answers
(other percentile definitions) pass, and the untouched skeleton gets the standard message."""
import numpy as np
import pytest

from labkit import checks
from labkit.checks import evaluate
from labkit.checks import perf_hedge
from check_corpus import corpus_tests
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
