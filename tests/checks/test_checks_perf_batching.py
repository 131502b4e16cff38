"""Chapter 06's batching exercise (labkit/checks/perf_batching.py): the reference passes run
after run, each known-wrong answer is rejected for its own reason, unusual right answers pass,
the untouched skeleton gets the standard message, and an answer that blocks comes back."""
import random

from labkit import checks
from labkit.checks import evaluate, perf_batching
from check_corpus import corpus_tests
from test_checks_sync import _define
from wrong_answers import RIGHT, WHY, WRONG

MINE = ("06.collect_batch",)

SKELETONS = {
    "06.collect_batch": '''
async def collect_batch(queue, max_batch, max_wait_s):
    """The next batch from `queue` (an asyncio.Queue): wait for the first item, then take
    more until the batch holds max_batch items or max_wait_s seconds have passed since the
    first one was taken; return the items as a list, in the order they arrived."""
    # your code here
    raise NotImplementedError
''',
}

(test_wrong_answer_is_rejected_for_its_reason, test_unusual_right_answer_passes,
 test_untouched_skeleton_gets_the_standard_message) = corpus_tests(MINE, SKELETONS)


def test_enough_wrong_and_right_answers_and_the_first_is_the_tutorials_bug():
    wrong = [w for w in WRONG if w[0] in MINE]
    assert len(wrong) >= 6 and sum(r[0] in MINE for r in RIGHT) >= 2
    assert "tutorial" in wrong[0][1]
    assert {what for _, what, _ in wrong} <= set(WHY)


def test_reference_passes_run_after_run(run):
    for _ in range(5):
        result = run(evaluate("06.collect_batch", checks.EXERCISES["06.collect_batch"].reference))
        assert result.passed, result.message


def test_inputs_vary_between_runs():
    a = perf_batching._scenarios(random.Random(1))
    b = perf_batching._scenarios(random.Random(2))
    assert a != b
    for name, arrivals, mb, mw in a + b:
        assert perf_batching._clear_of_deadlines(arrivals, mb, mw), name


def test_expected_rule_on_a_hand_worked_case():
    arrivals = [(0.0, "a"), (0.0, "b"), (0.0, "c"), (0.001, "d"), (0.008, "e"), (0.015, "f")]
    got = perf_batching._expected(arrivals, 3, 0.010)
    assert [(round(t, 6), items) for t, items, _ in got] == \
        [(0.0, ["a", "b", "c"]), (0.011, ["d", "e"]), (0.025, ["f"])]


def test_a_blocking_answer_gets_a_message_not_a_hang(run):
    source = '''
async def collect_batch(queue, max_batch, max_wait_s):
    time.sleep(3)
    return [await queue.get()]
'''
    perf_batching_limit = perf_batching._REAL_LIMIT_S
    perf_batching._REAL_LIMIT_S = 1.0
    try:
        result = run(evaluate("06.collect_batch", _define(source)))
    finally:
        perf_batching._REAL_LIMIT_S = perf_batching_limit
    assert not result.passed and "time.sleep" in result.message

