"""Chapter 6's single_flight check (labkit/checks/perf_cache.py): the reference passes run after
run, each known-wrong answer is rejected for its own reason, unusual right answers pass, the
untouched skeleton gets the standard message, and the inputs vary from run to run."""
import asyncio
import gc
import warnings

from labkit import checks
from labkit.checks import evaluate
from labkit.checks import perf_cache
from check_corpus import corpus_tests
from test_checks_sync import _define
from wrong_answers import RIGHT, WRONG

MINE = ("06.single_flight",)

SKELETONS = {
    "06.single_flight": '''
async def single_flight(cache, inflight, key, load):
    """The value for `key`: from `cache` (key -> value) if there, else `await load(key)`,
    started once for all callers that miss at the same time (keep the running load in
    `inflight`, key -> task). Store the value in `cache`; a failed load raises its error to
    every waiter and is not stored; remove the key from `inflight` when its load ends."""
    # your code here
    raise NotImplementedError
''',
}


def test_registered_with_title_and_hint():
    ex = checks.EXERCISES["06.single_flight"]
    assert ex.reference is perf_cache.single_flight and ex.title and ex.hint


def test_reference_passes_three_runs_in_a_row(run):
    for _ in range(3):
        result = run(evaluate("06.single_flight", perf_cache.single_flight))
        assert result.passed, result.message


def test_enough_known_answers():
    assert sum(w[0] in MINE for w in WRONG) >= 6 and sum(r[0] in MINE for r in RIGHT) >= 2


def test_inputs_vary_from_run_to_run(run):
    seen = []

    async def spy(cache, inflight, key, load):
        seen.append(key)
        return await perf_cache.single_flight(cache, inflight, key, load)
    assert run(evaluate("06.single_flight", spy)).passed
    first, seen[:] = list(seen), []
    assert run(evaluate("06.single_flight", spy)).passed
    assert first != seen


def test_the_lock_answer_is_told_what_it_costs_in_milliseconds(run):
    source = next(s for e, w, s in WRONG if w.startswith("one lock held across the load"))
    result = run(evaluate("06.single_flight", _define(source, "06.single_flight")))
    assert "10 different keys, each load taking 30 ms, took" in result.message
    took_ms = int(result.message.split("took ")[1].split(" ms")[0])
    assert took_ms >= 250                     # ten 30-ms loads, one after another


def test_a_cancelled_caller_does_not_cancel_the_load_for_the_others(run):
    async def main():
        calls = []

        async def load(key):
            calls.append(key)
            await asyncio.sleep(0.05)
            return key.upper()
        cache, inflight = {}, {}
        first = asyncio.ensure_future(perf_cache.single_flight(cache, inflight, "k", load))
        others = [asyncio.ensure_future(perf_cache.single_flight(cache, inflight, "k", load))
                  for _ in range(3)]
        await asyncio.sleep(0.01)
        first.cancel()
        got = await asyncio.wait_for(asyncio.gather(*others), 5)
        return first.cancelled(), got, calls, inflight
    cancelled, got, calls, inflight = run(main())
    assert cancelled and got == ["K"] * 3 and calls == ["k"] and inflight == {}


(test_wrong_answer_is_rejected_for_its_reason, test_unusual_right_answer_passes,
 test_untouched_skeleton_gets_the_standard_message) = corpus_tests(MINE, SKELETONS, runs=3)


def test_a_load_nobody_awaited_leaves_no_never_awaited_warning():
    source = next(s for e, w, s in WRONG if w == "a plain def that runs the load with asyncio.run")
    with warnings.catch_warnings(record=True) as caught:      # not `run`: it records its own
        warnings.simplefilter("always")
        result = asyncio.run(asyncio.wait_for(
            evaluate("06.single_flight", _define(source, "06.single_flight")), 60))
        gc.collect()
    assert "called from inside a running event loop" in result.message
    assert not [w for w in caught if "never awaited" in str(w.message)]
