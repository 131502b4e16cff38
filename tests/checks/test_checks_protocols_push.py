"""Chapter 3, exercise 3 (labkit/checks/protocols_push.py): the reference passes run after run,
each known-wrong answer is rejected for its own reason, unusual right answers pass, the
skeleton gets the standard message, a blocking answer is stopped, and the learner's function
plugs into ResumingWebSocket."""
import asyncio
import copy

import pytest

from labkit import checks
from labkit.checks import evaluate
from labkit.checks import protocols_push as ex3
from labkit.patterns.backoff import FullJitter
from labkit.protocols.push import start_push_service
from labkit.protocols.push_client import EventGap, ResumingWebSocket, follow_events
from check_corpus import corpus_tests
from test_checks_sync import _define
from wrong_answers import BLOCKING, RIGHT, WHY, WRONG

ID = "03.follow_events"
WRONG3 = [w for w in WRONG if w[0] == ID]
RIGHT3 = [r for r in RIGHT if r[0] == ID]
BLOCKING3 = [b for b in BLOCKING if b[0] == ID]

SKELETON = '''
def follow_events(events, last_id):
    """Keep the events of `events` not seen yet (id > last_id, each id once), in id order, and
    return (new_events, new_last_id). If an id after last_id is missing, raise
    EventGap(last_id, id). Do not change the list you are given."""
    # your code here
    raise NotImplementedError
'''


def test_registered_with_a_title_hint_and_enough_wrong_and_right_answers():
    ex = checks.EXERCISES[ID]
    assert ex.chapter == "03" and ex.name == "follow_events" and ex.title and ex.hint
    assert ex.reference is follow_events
    assert len(WRONG3) >= 6 and len(RIGHT3) >= 1
    assert all(w in WHY for _, w, _ in WRONG3)


def test_reference_passes_three_runs_in_a_row(run):
    for _ in range(3):
        result = run(evaluate(ID, follow_events))
        assert result.passed, result.message


def test_inputs_vary_from_run_to_run(run):
    seen = []

    def spy(events, last_id):
        seen.append((tuple(e["id"] for e in events), last_id))
        return follow_events(events, last_id)
    assert run(evaluate(ID, spy)).passed
    first, seen[:] = list(seen), []
    assert run(evaluate(ID, spy)).passed
    assert first != seen and len(first) == len(seen) >= 6


def test_an_async_answer_is_told_to_be_a_plain_def(run):
    async def follow_events_async(events, last_id):
        return follow_events(events, last_id)
    result = run(evaluate(ID, follow_events_async))
    assert not result.passed and "plain `def`" in result.message


@pytest.mark.timeout(120)
@pytest.mark.parametrize("ex_id, what, source, fragment", BLOCKING3,
                         ids=[w for _, w, _, _ in BLOCKING3])
def test_a_blocking_answer_is_stopped(run, ex_id, what, source, fragment):
    result = run(evaluate(ex_id, _define(source, ex_id), timeout_s=1.0, blocked_s=0.5))
    assert not result.passed and fragment in result.message, result.message


def test_the_check_gap_cases_really_have_holes_and_the_others_do_not():
    import random
    for seed in range(20):
        for case in ex3._cases(random.Random(seed)):
            if case.gap:
                with pytest.raises(EventGap):
                    follow_events(case.events, case.last_id)
            else:
                assert follow_events(case.events, case.last_id) == (
                    case.want, case.want[-1]["id"] if case.want else case.last_id)


def test_the_learners_function_plugs_into_the_resuming_client(run):
    """The chapter's last step: ResumingWebSocket(follow=<the learner's function>)."""
    learner = _define(RIGHT3[0][2], ID)
    calls = []

    def counted(events, last_id):
        calls.append(last_id)
        return learner(events, last_id)

    async def main():
        import labkit
        svc = await start_push_service(seed=3)
        svc.drop_rate = 0.1
        feed = ResumingWebSocket(svc.url, last_id=0, follow=counted,
                                 backoff=FullJitter(base=0.001, cap=0.01))
        got = []

        async def consume():
            async for event in feed:
                got.append(event["id"])
        task = asyncio.ensure_future(consume())
        for i in range(60):
            await svc.emit(f"order-{i % 5}", "paid")
        for _ in range(400):
            if len(got) == 60:
                break
            await asyncio.sleep(0.02)
        await labkit.shutdown()
        await asyncio.wait_for(task, 10)
        await feed.close()
        return got, feed
    got, feed = run(main())
    assert got == list(range(1, 61)) and len(calls) >= 60 and feed.reconnects >= 1


def test_eventgap_arguments_are_checked_against_the_inputs_the_answer_saw(run):
    # The right gap, reported with the wrong arguments, is rejected; the message names the
    # arguments it expected for the very batch the answer was given.
    seen = []

    def swapped(events, last_id):
        seen.append((copy.deepcopy(events), last_id))
        try:
            return follow_events(events, last_id)
        except EventGap as err:
            raise EventGap(err.got, err.last_id) from None
    result = run(evaluate(ID, swapped))
    assert not result.passed and "the arguments are swapped" in result.message
    events, last_id = next((e, n) for e, n in seen if f"last_id={n})" in result.message
                           and str([x["id"] for x in e]) in result.message)
    with pytest.raises(EventGap) as gap:
        follow_events(events, last_id)
    assert f"expected EventGap({gap.value.last_id}, {gap.value.got})" in result.message
    assert f"raised EventGap({gap.value.got}, {gap.value.last_id})" in result.message


(test_wrong_answer_is_rejected_for_its_reason, test_unusual_right_answer_passes,
 test_untouched_skeleton_gets_the_standard_message) = corpus_tests((ID,), {ID: SKELETON}, runs=3)
