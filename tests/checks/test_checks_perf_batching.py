"""Chapter 06's batching exercise (labkit/checks/perf_batching.py): the reference passes run
after run, each known-wrong answer is rejected for its own reason, unusual right answers pass,
the untouched skeleton gets the standard message, and an answer that blocks comes back."""
import asyncio
import random
import threading
import time

import pytest

from labkit import checks, sim
from labkit.checks import evaluate, perf_batching
from check_corpus import corpus_tests
from test_checks_sync import _define
from wrong_answers import BLOCKING, RIGHT, WHY, WRONG

MINE = ("06.collect_batch",)

SKELETONS = {
    "06.collect_batch": '''
async def collect_batch(queue, max_batch, max_wait_s):
    """The next batch from `queue` (an asyncio.Queue): wait for the first item, then take
    more until the batch holds max_batch items or max_wait_s seconds have passed since the
    first one was taken. Items already in the queue go in without waiting, up to max_batch
    (at max_wait_s=0, returning just the first item is accepted too: on Python 3.11,
    asyncio.wait_for(queue.get(), 0) times out even when an item is waiting); items beyond
    max_batch stay in the queue. Return the items as a new list (a tuple works too), in the
    order they arrived."""
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


@pytest.mark.timeout(120)
@pytest.mark.parametrize("what, source, fragment", [b[1:] for b in BLOCKING if b[0] in MINE],
                         ids=[b[1] for b in BLOCKING if b[0] in MINE])
def test_a_blocking_answer_is_stopped_and_leaves_no_thread(run, what, source, fragment):
    # The virtual loop is stepped on the check's own thread, so the guard's watchdog stops
    # an answer that never awaits; asyncio.run comes back and no thread is left behind.
    before = set(threading.enumerate())
    t0 = time.monotonic()
    result = run(evaluate("06.collect_batch", _define(source), timeout_s=20.0, blocked_s=0.5))
    assert time.monotonic() - t0 < 15
    assert not result.passed and fragment in result.message, result.message
    assert not [t for t in threading.enumerate() if t not in before and t.is_alive()]


def test_a_slow_blocking_answer_is_named_and_stopped(run, monkeypatch):
    source = '''
async def collect_batch(queue, max_batch, max_wait_s):
    time.sleep(0.3)
    return [await queue.get()]
'''
    monkeypatch.setattr(perf_batching, "_REAL_LIMIT_S", 0.5)
    result = run(evaluate("06.collect_batch", _define(source)))
    assert not result.passed and "time.sleep blocks the event loop" in result.message


def test_reference_takes_items_already_waiting_when_max_wait_is_zero():
    ref = checks.EXERCISES["06.collect_batch"].reference

    async def main():
        queue = asyncio.Queue()
        for x in range(5):
            queue.put_nowait(x)
        return [await ref(queue, 4, 0.0), await ref(queue, 4, 0.0)]

    assert sim.run(main) == [[0, 1, 2, 3], [4]]
    got = perf_batching._expected([(0.0, x) for x in range(5)], 4, 0.0)
    assert [items for _, items, _ in got] == [[0, 1, 2, 3], [4]]


def test_at_max_wait_zero_one_item_or_every_waiting_item_is_right_but_not_some():
    # Python 3.11's wait_for(queue.get(), 0) times out with an item waiting; 3.12 returns it
    arrivals = [(0.004, x) for x in (10, 11, 12, 13, 14)] + [(0.009, 15)]
    every = [(0.004, 0.004, [10, 11, 12, 13], [], None), (0.004, 0.004, [14], [], None),
             (0.004, 0.009, [15], [], None)]
    one = [(0.0, 0.004, [10], [], None)] + [(0.004, 0.004, [x], [], None)
                                            for x in (11, 12, 13, 14)] + \
        [(0.004, 0.009, [15], [], None)]
    for got in (every, one):
        perf_batching._diagnose("zero", arrivals, 4, 0.0, got)
    some = [(0.0, 0.004, [10, 11], [], None)]
    with pytest.raises(checks.Wrong, match=r"should have returned \[10, 11, 12, 13\] \(every "
                                           r"item already waiting, up to max_batch\) or just "
                                           r"\[10\]"):
        perf_batching._diagnose("zero", arrivals, 4, 0.0, some)


def test_two_times_that_round_alike_are_shown_apart():
    assert perf_batching._apart(0.0398, 0.03984) == ("39.80 ms", "39.84 ms", "0.04 ms")
    assert perf_batching._apart(0.0024, 0.0060) == ("2.4 ms", "6.0 ms", "3.6 ms")
    assert perf_batching._apart(0.0398, 0.039802) == ("39.800 ms", "39.802 ms", "0.002 ms")
    arrivals = [(0.0398, x) for x in (10, 11, 12, 13, 14)]
    with pytest.raises(checks.Wrong, match=r"waiting at t = 39\.80 ms, but your collect_batch "
                                           r"returned only at t = 39\.84 ms, 0\.04 ms late"):
        perf_batching._diagnose("burst", arrivals, 5, 0.02,
                                [(0.0, 0.03984, [10, 11, 12, 13, 14], [], None)])


@pytest.mark.parametrize("on, part, said", [
    ("get", True, "waiting for more items, and a partial batch was never sent"),
    (None, True, "something other than the queue (no queue.get() was pending), and a partial"),
    (None, False, "something other than the queue (no queue.get() was pending). It should "
                  "have returned the full batch [10, 11, 12]"),
    ("join", False, "waiting in queue.join(), which returns only once every item put in the "
                    "queue has been marked task_done(), the 2 still queued for later batches "
                    "too. It should have returned the full batch [10, 11, 12] at t = 5.0 ms")])
def test_a_call_that_never_returns_is_told_what_it_waited_on(on, part, said):
    arrivals = [(0.005, x) for x in (10, 11, 12, 13, 14)]
    max_batch = 6 if part else 3
    with pytest.raises(checks.Wrong) as err:
        perf_batching._diagnose("burst", arrivals, max_batch, 0.02, [("waiting", 1.5, 2, on)])
    assert said in err.value.message
    assert ("partial" in err.value.message) == part
    assert ("queue.join() is for a producer" in err.value.hint) == (on == "join")
