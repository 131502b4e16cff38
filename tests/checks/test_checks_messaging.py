"""Chapter 2's checks (labkit/checks/messaging.py): the references pass run after run, each
known-wrong answer is rejected for its own reason, unusual right answers pass, the untouched
skeleton gets the standard message, and nothing hangs."""
import asyncio
import gc
import time
import types
import warnings

import pytest

from labkit import checks
from labkit.checks import evaluate, exercises_for
from labkit.checks import messaging as ch2
from check_corpus import corpus_tests
from test_checks_sync import _define
from wrong_answers import BLOCKING, RIGHT, WRONG

CHAPTER2 = [w for w in WRONG if w[0].startswith("02.")]
RIGHT2 = [r for r in RIGHT if r[0].startswith("02.")]
BLOCKING2 = [b for b in BLOCKING if b[0].startswith("02.")]

#: The exercise cells of the notebook (tagged exercise:<name>), as the learner first sees them.
SKELETONS = {
    "02.handle_ticket": '''
async def handle_ticket(message, cook):
    """Cook one ticket from the rail. `await cook(message.body)` does the work and may raise.
    Ack only after cook succeeded. If cook raises: the first time (message.redelivered is
    False) nack(requeue=True), so it is tried once more; if it was redelivered,
    reject(requeue=False), so the broker moves it to the dead-letter queue."""
    # your code here
    raise NotImplementedError
''',
    "02.charge_once": '''
async def charge_once(message, charge, seen):
    """Charge each order once per message id, although the broker may deliver it again.
    `await charge(message.body)` charges the customer and may raise (then nothing was charged:
    nack(requeue=True) so it is tried again). `seen` remembers ids: `id in seen`,
    `seen.add(id)`. Ack every message you are done with, duplicates too."""
    # your code here
    raise NotImplementedError
''',
    "02.publish_event": '''
def publish_event(subscribers, event):
    """Put `event` on every subscriber's asyncio.Queue (a dict name -> queue) without ever
    waiting. When a queue is full, drop its oldest event to make room. Return how many events
    were dropped."""
    # your code here
    raise NotImplementedError
''',
}


def test_three_exercises_in_chapter_order():
    assert [ex.id for ex in exercises_for("02")] == [
        "02.handle_ticket", "02.charge_once", "02.publish_event"]
    assert all(ex.title and ex.hint for ex in exercises_for("02"))


def test_every_exercise_has_known_wrong_and_right_answers():
    for ex in exercises_for("02"):
        assert sum(w[0] == ex.id for w in CHAPTER2) >= 5, ex.id
        assert sum(r[0] == ex.id for r in RIGHT2) >= 1, ex.id


@pytest.mark.parametrize("ex", exercises_for("02"), ids=lambda ex: ex.id)
def test_reference_passes_three_runs_in_a_row(run, ex):
    for _ in range(3):
        result = run(evaluate(ex.id, ex.reference))
        assert result.passed, result.message


def test_inputs_vary_from_run_to_run(run):
    seen = []

    async def spy(message, cook):
        seen.append(message.message_id)
        await ch2.handle_ticket(message, cook)
    assert run(evaluate("02.handle_ticket", spy)).passed
    first, seen[:] = set(seen), []
    assert run(evaluate("02.handle_ticket", spy)).passed
    assert first != set(seen)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("ex_id, what, source, fragment", BLOCKING2,
                         ids=[w for _, w, _, _ in BLOCKING2])
def test_a_blocking_answer_is_stopped_by_the_guard(run, ex_id, what, source, fragment):
    t0 = time.monotonic()
    result = run(evaluate(ex_id, _define(source, ex_id), timeout_s=1.0, blocked_s=0.5))
    assert time.monotonic() - t0 < 40
    assert not result.passed and fragment in result.message, result.message


def test_a_handler_that_never_returns_is_stopped(run, monkeypatch):
    monkeypatch.setattr(ch2, "HANDLER_S", 0.2)

    async def hangs(message, cook):
        await asyncio.Event().wait()
    result = run(evaluate("02.handle_ticket", hangs))
    assert not result.passed and "did not return within 0.2 s" in result.message


def test_a_poison_loop_is_stopped_after_a_bounded_number_of_deliveries(run):
    deliveries = []

    async def loops(message, cook):
        deliveries.append(message.message_id)
        try:
            await cook(message.body)
            await message.ack()
        except Exception:
            await message.nack(requeue=True)
    result = run(evaluate("02.handle_ticket", loops))
    assert "would come back forever" in result.message
    poison = [t for t in set(deliveries) if deliveries.count(t) > 2]
    assert poison and max(deliveries.count(t) for t in poison) == 6


def test_charge_once_check_crashes_consumers_and_passes_a_bounded_store(run):
    seen_by, crashes = [], []

    async def spy(message, charge, seen):
        seen_by.append(seen)
        try:
            await ch2.charge_once(message, charge, seen)
        except messaging_crash() as err:
            crashes.append(err)
            raise
    assert run(evaluate("02.charge_once", spy)).passed
    store = seen_by[0]
    assert all(s is store for s in seen_by) and len(store) <= store.max_ids
    assert crashes                     # the consumer died before an ack at least once
    store.add("x")
    for i in range(store.max_ids + 5):
        store.add(str(i))
    assert len(store) == store.max_ids and "x" not in store


def messaging_crash():
    from labkit.messaging import ConsumerCrashed
    return ConsumerCrashed


def test_cook_called_without_await_leaves_no_never_awaited_warning(run):
    source = [s for e, w, s in CHAPTER2 if w == "calls cook without await"][0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run(evaluate("02.handle_ticket", _define(source, "02.handle_ticket")))
        gc.collect()
    assert "without `await`" in result.message
    assert not [w for w in caught if "never awaited" in str(w.message)]


def test_publish_event_message_names_the_queue_that_raised(run):
    source = [s for e, w, s in CHAPTER2 if w == "put_nowait without catching QueueFull"][0]
    result = run(evaluate("02.publish_event", _define(source, "02.publish_event")))
    assert "whose queue was full" in result.message and "got nothing" in result.message


def test_solution_prints_the_reference(capsys):
    checks.solution("02.handle_ticket")
    out = capsys.readouterr().out
    assert "message.reject(requeue=False)" in out and "await message.ack()" in out


def test_process_right_answers_are_in_the_corpus_once_the_api_has_it():
    from labkit.messaging.api import IncomingMessage
    uses = [w for _, w, _ in RIGHT2 + CHAPTER2 if "message.process" in w]
    assert hasattr(IncomingMessage, "process") and len(uses) >= 4


def test_a_handler_cancelled_by_the_close_leaves_no_unretrieved_task_exception(run):
    """The check closes its channel while handlers run (a learner's time.sleep makes that
    likely); a handler task that ended with an error nobody looked at must not make asyncio
    print "Task exception was never retrieved" after the check."""
    async def scenario():
        noise = []
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, ctx: noise.append(ctx.get("message")))
        release, ended = asyncio.Event(), []

        async def handler(message):
            await release.wait()
            ended.append(message.message_id)
            raise RuntimeError("the channel is closed")
        bench = ch2._Bench(handler, lambda *a: None, None, prefetch=1, max_deliveries=3)
        consume = asyncio.ensure_future(bench._consume(types.SimpleNamespace(message_id="T-1")))
        for _ in range(3):
            await asyncio.sleep(0)
        release.set()
        await asyncio.sleep(0)               # the handler ends with its error ...
        assert ended == ["T-1"]
        consume.cancel()                     # ... and the close cancels its consumer first
        await asyncio.gather(consume, return_exceptions=True)
        for _ in range(3):
            await asyncio.sleep(0)
        gc.collect()
        await asyncio.sleep(0)
        return noise
    assert run(scenario()) == []


def test_charge_once_check_passes_a_seen_store_named_like_the_notebooks(run):
    from labkit.messaging.consumers import SeenStore
    stores = []

    async def spy(message, charge, seen):
        stores.append(seen)
        await ch2.charge_once(message, charge, seen)
    assert run(evaluate("02.charge_once", spy)).passed
    store = stores[0]
    assert isinstance(store, SeenStore) and "_" not in type(store).__name__
    assert "SeenIds" in repr(store)
    for use in (lambda: store.append("x"), lambda: store.__setitem__("x", 1), lambda: list(store)):
        with pytest.raises((AttributeError, TypeError), match="seen supports `id in seen`"):
            use()
    assert not hasattr(store, "_repr_html_")            # IPython's probes are not a misuse


def test_the_loop_answer_is_not_told_that_the_order_was_never_charged(run):
    source = [s for e, w, s in CHAPTER2 if w == "retries charge in a loop inside one delivery"][0]
    for _ in range(3):
        result = run(evaluate("02.charge_once", _define(source, "02.charge_once")))
        assert "never charged" not in result.message
        assert "nack(requeue=True)" in result.message and "prefetch" in result.message


def test_queue_empty_from_publish_event_is_described_not_a_bare_colon():
    from labkit.checks import Wrong, pubsub
    source = [s for e, w, s in CHAPTER2 if w == "drops when one short of full (off by one)"][0]
    impl = _define(source, "02.publish_event")
    subs = {"kitchen": asyncio.Queue(maxsize=1), "billing": asyncio.Queue(maxsize=3)}
    with pytest.raises(Wrong) as caught:
        subs["billing"].put_nowait({"seq": 0})
        pubsub._judge_publish(impl, subs, {"kitchen": [], "billing": [{"seq": 0}]}, {"seq": 1})
    message = caught.value.message
    assert "QueueEmpty: you called get_nowait() on an empty queue" in message
    assert "'kitchen' held no events" in message and ": (" not in message


@pytest.mark.parametrize("err, text", [
    (asyncio.QueueEmpty(), "QueueEmpty (you called get_nowait() on an empty queue)"),
    (asyncio.QueueFull(), "QueueFull (you called put_nowait() on a full queue)"),
    (RuntimeError(), "RuntimeError (no message)"),
    (KeyError("x"), "KeyError: 'x'"),
])
def test_raised_never_leaves_a_bare_colon(err, text):
    from labkit.checks import raised
    assert raised(err) == text


def test_an_exception_without_message_in_a_handler_is_described(run):
    async def raises(message, charge, seen):
        raise LookupError()
    result = run(evaluate("02.charge_once", raises))
    assert "raised LookupError (no message)" in result.message, result.message


(test_wrong_answer_is_rejected_for_its_reason, test_unusual_right_answer_passes,
 test_untouched_skeleton_gets_the_standard_message) = corpus_tests(
    {w[0] for w in CHAPTER2}, SKELETONS, runs=2)
