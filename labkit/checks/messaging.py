"""Chapter 02 exercises (notebooks/02_async_messaging.ipynb): a kitchen consumer that acks a
ticket only after it was cooked and dead-letters a poison ticket after one retry, an
idempotent consumer that charges once per message id, and a publish that never waits for a
slow subscriber. The first two run the learner's handler on the embedded broker
(`labkit.messaging`, never RabbitMQ) and account for every message; the third is a plain
function on asyncio queues (`labkit.checks.pubsub`). Inputs (ids, counts, which order fails)
vary per run."""
from __future__ import annotations

import asyncio
import functools
import inspect
from collections import Counter, OrderedDict, defaultdict

from labkit import messaging
from labkit.messaging import (Broker, BrokerFaults, ConsumerCrashed, DeliveryChecker, Message,
                              MessageProcessed)
from labkit.messaging.consumers import SeenStore
from . import Wrong, exercise, raised, run_rng

HANDLER_S = 5.0      # one call of the learner's handler may take this long
RUN_S = 10.0         # all messages of a check must be settled within this (real seconds)


class _Bench:
    """The learner's handler as the only consumer of queue "rail" (dead letters go to
    "rail.dead") on a fresh embedded broker. `judge(message, steps, error)` runs after each
    delivery; `fail(wrong)` stops the run (later deliveries stay unacked until the close)."""

    def __init__(self, handler, judge, looping, *, prefetch: int, max_deliveries: int):
        self.handler, self.judge, self.looping, self.prefetch = handler, judge, looping, prefetch
        self.max_deliveries, self.deliveries = max_deliveries, Counter()
        self.steps: dict[str, list] = defaultdict(list)   # id -> steps of its current delivery
        self.error: BaseException | None = None
        self.delivered = self.finished = 0

    def fail(self, error: BaseException) -> None:
        self.error = self.error or error

    def step(self, mid, what) -> None:
        self.steps[mid].append(what)

    def _event(self, e) -> None:
        if e.queue == "rail" and e.kind in ("acked", "nacked", "rejected"):
            self.step(e.message_id, (e.kind, e.requeue))
        self.delivered += e.queue == "rail" and e.kind == "delivered"

    async def _consume(self, message) -> None:
        mid, task = message.message_id, None
        self.deliveries[mid] += 1
        try:
            if self.error is None and self.deliveries[mid] > self.max_deliveries:
                self.fail(self.looping(mid))
            if self.error is not None:
                return
            steps = self.steps[mid] = []
            task = asyncio.ensure_future(self.handler(message))
            try:
                await asyncio.wait({task}, timeout=HANDLER_S)
            finally:
                if timed_out := not task.done():
                    task.cancel()
            if timed_out:
                raise Wrong(f"your function did not return within {HANDLER_S:g} s for message "
                            f"{mid!r}: it waits for something that never comes.")
            error = task.exception()
            if error is not None and not isinstance(error, Exception):
                raise error                    # LoopBlocked and the like
            if self.error is None:
                self.judge(message, steps, error)
        except Wrong as w:
            self.fail(w)
        except asyncio.CancelledError:
            raise
        except BaseException as err:      # LoopBlocked: stop, and let the guard see it
            self.fail(err)
            raise
        finally:
            self.finished += 1
            if task is not None:          # cancelled before it looked (the close): look now
                _retrieve(task) if task.done() else task.add_done_callback(_retrieve)

    async def run(self, messages: list[Message], broker: Broker) -> DeliveryChecker:
        """Publish `messages`, consume until every delivery was handled, close; the checker."""
        broker.journal.subscribe(self._event)
        conn = await messaging.connect(broker=broker)
        try:
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=self.prefetch)
            dead = await ch.declare_exchange("rail.dead", "fanout")
            await (await ch.declare_queue("rail.dead")).bind(dead)
            queue = await ch.declare_queue(
                "rail", arguments={"x-dead-letter-exchange": "rail.dead"})
            for m in messages:
                await ch.default_exchange.publish(m, "rail")
            await queue.consume(self._consume)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + RUN_S
            while self.error is None and loop.time() < deadline and self.finished < self.delivered:
                await asyncio.sleep(0.005)
            if self.error is None and loop.time() >= deadline:
                self.fail(Wrong(f"the messages were not all handled within {RUN_S:g} s."))
            self.info = broker.queue_info("rail"), broker.queue_info("rail.dead")
            self.dead_ids = [e.message_id for e in broker.journal.events
                             if e.kind == "dead_lettered" and e.queue == "rail"]
        finally:
            await conn.close()
        if self.error is not None:
            raise self.error
        return DeliveryChecker.of(broker.journal.events)


def _retrieve(task) -> None:
    """Look at a handler's outcome, so that asyncio prints no "Task exception was never
    retrieved" (a handler still running at the close ends with ChannelClosed or cook's error)."""
    _ = task.cancelled() or task.exception()


_PASS_ON = (NotImplementedError, TimeoutError)   # `evaluate` has its own words for these




# ---------------------------------------------------------------------------------------------
# Exercise 1: ack after the work, one retry, then the dead-letter queue


async def handle_ticket(message, cook):
    """Cook one ticket: ack after `cook` succeeded; if it fails, requeue it the first time and
    dead-letter it (reject, no requeue) when it fails again on the redelivery."""
    try:
        await cook(message.body)
    except Exception:
        if message.redelivered:
            await message.reject(requeue=False)     # second failure: to the dead-letter queue
        else:
            await message.nack(requeue=True)        # first failure: try once more
        return
    await message.ack()


class _Failed(RuntimeError):
    """The check's cook or charge failing (nothing was cooked or charged)."""


_HINT_1 = ("`try: await cook(message.body)`; `except Exception:` reject(requeue=False) if "
           "message.redelivered else nack(requeue=True), then return; ack only after the try "
           "(or in `else:`).")


@exercise("02.handle_ticket", reference=handle_ticket, title="Exercise 1 · handle_ticket",
          hint=_HINT_1)
async def check_handle_ticket(impl) -> None:
    rng = run_rng("02.handle_ticket")
    ids = [f"T-{n}" for n in rng.sample(range(100, 1000), rng.randint(6, 9))]
    n_poison = rng.randint(1, 2)
    n_bad = n_poison + rng.randint(1, 2)             # the first are poison, then transient
    kind = {t: "poison" if i < n_poison else "transient" if i < n_bad else "good"
            for i, t in enumerate(ids)}
    poison = ids[:n_poison]
    rng.shuffle(ids)
    body_of = {t: f"ticket {t}: {rng.choice(['ramen', 'dumplings', 'curry', 'pho'])}".encode()
               for t in ids}
    by_body = {b: t for t, b in body_of.items()}
    cooked, attempts, made = Counter(), Counter(), []
    bench: _Bench

    def cook(body):
        t = by_body.get(body)
        if t is None:
            bench.fail(Wrong(f"cook was called with {body!r}; call it with the ticket: "
                             "`await cook(message.body)`."))
            raise bench.error
        bench.step(t, "called")
        made.append(work(t))
        return made[-1]

    async def work(t):
        await asyncio.sleep(0)
        attempts[t] += 1
        if kind[t] == "poison" or (kind[t] == "transient" and attempts[t] == 1):
            bench.step(t, "failed")
            raise _Failed(f"the stove went out while cooking {t}")
        cooked[t] += 1
        bench.step(t, "cooked")

    judge = functools.partial(_judge_ticket, kind=kind)
    bench = _Bench(lambda m: impl(m, cook), judge, lambda t: Wrong(
        f"ticket {t} fails every time (a poison message), and your handle_ticket requeued it on "
        "every failure, also when message.redelivered was True: it was delivered 6 times and "
        "would come back forever (the source tutorial's nack(requeue=True) loop).",
        "When cook fails on a redelivery, `await message.reject(requeue=False)`: the broker "
        "moves it to the dead-letter queue."), prefetch=rng.randint(1, 3), max_deliveries=6)
    try:
        checker = await bench.run([Message(body_of[t], message_id=t) for t in ids], Broker())
    finally:
        for coro in made:                 # never awaited: close it (no RuntimeWarning later)
            if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
                coro.close()
    for t in ids:
        if kind[t] == "poison" and bench.deliveries[t] != 2:
            raise Wrong(f"poison ticket {t} (cook fails every time) was delivered "
                        f"{bench.deliveries[t]} times before it reached the dead-letter queue; "
                        "expected 2: requeue it after the first failure only.", _HINT_1)
        if kind[t] != "poison" and cooked[t] != 1:
            raise Wrong(f"ticket {t} was cooked {cooked[t]} times; expected once.", _HINT_1)
    result, (rail, dlq) = checker.result(), bench.info
    if sorted(bench.dead_ids) != sorted(poison) or dlq["ready"] != len(poison) or \
            not result["ok"] or rail["ready"] or rail["unacked"]:
        raise Wrong(f"not every ticket was accounted for: dead-lettered {sorted(bench.dead_ids)} "
                    f"(expected the poison tickets {sorted(poison)}); delivery checker: "
                    f"{result['verdict']}.", _HINT_1)


def _judge_ticket(message, steps, error, kind) -> None:
    """Raise Wrong if this delivery was handled wrongly (true for what the answer did)."""
    t = message.message_id
    settles = [s for s in steps if isinstance(s, tuple)]
    works = [s for s in steps if s in ("cooked", "failed")]
    if isinstance(error, MessageProcessed):
        raise Wrong(f"your handle_ticket settled ticket {t} twice: each delivery gets "
                    "exactly one of ack, nack or reject. On RabbitMQ a second ack of the same "
                    "delivery closes the channel.",
                    "After nack/reject in `except`, `return` (or ack in `else:`).")
    if error is not None and not isinstance(error, _Failed):
        if str(error) or isinstance(error, _PASS_ON):
            raise error
        raise Wrong(f"your handle_ticket raised {raised(error)} for ticket {t}.", _HINT_1)
    if steps.count("called") > len(works):
        raise Wrong("you called cook(...) without `await`: the coroutine it returns never "
                    f"ran, so ticket {t} was not cooked.", "`await cook(message.body)`")
    if not settles:
        if "failed" in works:
            raise Wrong(f"when cook raised for ticket {t}, your handle_ticket neither acked, "
                        "nacked nor rejected it: it stays unacked, held by this consumer until "
                        "its channel closes, and takes a place in the prefetch window.", _HINT_1)
        raise Wrong(f"ticket {t} was {'cooked' if works else 'not cooked'} and never acked: it "
                    "stays unacked until the consumer's channel closes.", _HINT_1)
    first = steps.index(settles[0])
    before = [s for s in steps[:first] if s in ("cooked", "failed")]
    if settles[0][0] == "acked":
        if not works:
            raise Wrong(f"your handle_ticket acked ticket {t} without calling cook: the broker "
                        "deleted the ticket and nothing was cooked.", _HINT_1)
        if not before:
            raise Wrong(f"your handle_ticket acked ticket {t} before `await cook(...)` had "
                        "finished. If cook then fails, the ticket is gone: the ack told the "
                        "broker to delete it, and it is never cooked. Ack only after cook "
                        "succeeded.", _HINT_1)
        if before[-1] == "failed":
            raise Wrong(f"cook raised for ticket {t} and your handle_ticket acked it anyway: "
                        "the ticket is gone, never cooked.", _HINT_1)
    if len(works) > 1:
        raise Wrong(f"your handle_ticket called cook {len(works)} times for one delivery of "
                    f"ticket {t}. Cook once per delivery: a retry goes through the broker "
                    "(nack(requeue=True)), so that message.redelivered can bound it.", _HINT_1)
    how, requeue = settles[0]
    if works == ["cooked"] and how != "acked":
        raise Wrong(f"ticket {t} was cooked, and your handle_ticket {how} it instead of acking: "
                    + ("it will be cooked again." if requeue else "it ends in the dead-letter "
                       "queue although it was done."), _HINT_1)
    if works == ["failed"] and not message.redelivered and not requeue:
        raise Wrong(f"cook failed for ticket {t} on its first delivery (message.redelivered was "
                    f"False) and your handle_ticket {how} it without requeue: it went straight to "
                    "the dead-letter queue, although a ticket that failed once "
                    f"{'(like this one) ' if kind[t] == 'transient' else ''}may cook on its "
                    "second try. Requeue it the first time.",
                    "On the first failure `await message.nack(requeue=True)`.")


# ---------------------------------------------------------------------------------------------
# Exercise 2: an idempotent consumer


async def charge_once(message, charge, seen):
    """Charge each order once per message id, although the broker may deliver it again: skip
    (and ack) an id already in `seen`; if charge raises, nack(requeue=True) to try again."""
    if message.message_id in seen:
        await message.ack()                  # a duplicate: it was charged already
        return
    try:
        await charge(message.body)
    except Exception:
        await message.nack(requeue=True)     # nothing charged: try again
        return
    seen.add(message.message_id)             # charged: remember it before the ack
    await message.ack()


class SeenIds(SeenStore):
    """The `seen` the check passes: the notebook's bounded SeenStore, counting its use. Any use
    but `id in seen`, `seen.add(id)` and len is recorded in `misused` (the check says so)."""

    def __init__(self, max_ids: int):
        super().__init__(max_ids)
        self.asked, self.added, self.misused = 0, 0, ""

    def __contains__(self, key) -> bool:
        self.asked += 1
        return super().__contains__(key)

    def add(self, key) -> None:
        self.added += 1
        super().add(key)

    def _refuse(self, what: str, error=TypeError):
        self.misused = self.misused or what
        raise error(f"{what}: seen supports `id in seen` and `seen.add(id)`")

    def __getattr__(self, name):      # only called for names the store does not have
        if name.startswith("_"):      # (IPython and copy probe private names: not a misuse)
            raise AttributeError(name)
        self._refuse(f"seen.{name}", AttributeError)

    def __iter__(self):
        self._refuse("a loop over seen")

    def __getitem__(self, key):
        self._refuse("seen[...]")

    def __setitem__(self, key, value):
        self._refuse("seen[...] = ...")

    __delitem__ = __getitem__

    def __repr__(self) -> str:
        return f"<SeenIds: {len(self)} ids, at most {self.max_ids}>"


_HINT_2 = ("If message.message_id in seen: ack and return. Else `await charge(message.body)`; "
           "if it raises, `await message.nack(requeue=True)` and return; then "
           "seen.add(message.message_id) and ack.")


@exercise("02.charge_once", reference=charge_once, title="Exercise 2 · charge_once",
          hint=_HINT_2)
async def check_charge_once(impl) -> None:
    rng = run_rng("02.charge_once")
    ids = [f"order-{n}" for n in rng.sample(range(1000, 10_000), rng.randint(6, 9))]
    body_of = {o: f'{{"customer": "c-{rng.randint(10, 99)}", "cents": {rng.randint(5, 90) * 50}}}'
               .encode() for o in ids}
    twin, flaky, unlucky = ids[1], ids[2], ids[3]
    body_of[twin] = body_of[ids[0]]          # another order, the same body
    rng.shuffle(ids)
    charged, calls, crashed, current = Counter(), Counter(), set(), {}
    seen = SeenIds(max_ids=4 * len(ids))

    async def charge(body):
        if body not in body_of.values():
            bench.fail(Wrong(f"charge was called with {body!r}; call it with the order: "
                             "`await charge(message.body)`."))
            raise bench.error
        await asyncio.sleep(0)
        order = current[body]
        calls[order] += 1
        if order == flaky and calls[order] == 1:
            bench.step(order, "failed")
            raise _Failed("the payment service is down; nothing was charged")
        charged[order] += 1
        bench.step(order, "charged")

    async def handler(message):
        current[message.body] = message.message_id
        if message.message_id in seen._ids and charged[message.message_id]:
            bench.step(message.message_id, "dup")        # charged before: a duplicate
        if message.message_id == unlucky and bench.deliveries[unlucky] == 1:
            message.crashed = True           # it dies before its ack, as with the fault model
        try:
            await impl(message, charge, seen)
        finally:
            if message.crashed and message.processed:
                crashed.add(message.message_id)

    bench = _Bench(handler, functools.partial(_judge_charge, seen=seen), lambda o: Wrong(
        f"order {o} was delivered 12 times and was still not acked.", _HINT_2),
        prefetch=1, max_deliveries=12)
    broker = Broker()
    BrokerFaults(broker, crash_rate=rng.uniform(0.2, 0.3), seed=rng.randrange(10**6))
    checker = await bench.run([Message(body_of[o], message_id=o) for o in ids], broker)
    for o in sorted(ids, key=lambda o: charged[o] < 2):
        if charged[o] > 1:
            why = ("the consumer died before its ack, the broker delivered it again "
                   "(message.redelivered True)" if o in crashed else "it was delivered again")
            raise Wrong(f"order {o} was charged {charged[o]} times: {why}, and your charge_once "
                        "charged it again. Remember the ids you charged in `seen`, before the "
                        "ack, and skip them.", _HINT_2)
        if charged[o] == 0:
            if body_of[o] in seen._ids:
                raise Wrong(f"order {o} was never charged: another order with the same body "
                            "(a customer ordering the same thing twice) was charged, and you "
                            "keep bodies in `seen`. Two orders are the same only if their "
                            "message_id is the same.", "`seen.add(message.message_id)`")
            if o in seen._ids and calls[o]:
                raise Wrong(f"order {o} was never charged: its charge failed once, and when "
                            "it came back its id was already in `seen`, so it was skipped. "
                            "Add the id only after charge succeeded.", _HINT_2)
            raise Wrong(f"order {o} was never charged.", _HINT_2)
    if not seen.asked or not seen.added:
        raise Wrong("your charge_once did not use the `seen` store it is given (`id in seen` "
                    "and `seen.add(id)`): a set of your own grows forever, is lost when the "
                    "consumer restarts, and is not shared by the other consumers.",
                    "Use `message.message_id in seen` and `seen.add(message.message_id)`.")
    result, (rail, _) = checker.result(), bench.info
    if not result["ok"] or rail["ready"] or rail["unacked"]:
        raise Wrong(f"not every order was acked: delivery checker: {result['verdict']}.", _HINT_2)


def _judge_charge(message, steps, error, seen) -> None:
    o = message.message_id
    if seen.misused:
        raise Wrong(f"your charge_once used `{seen.misused}`, but seen supports `id in seen` and "
                    "`seen.add(id)` only: it is a bounded store of message ids (a SeenStore), "
                    "not a list or a dict.", "`seen.add(message.message_id)`")
    works = [s for s in steps if s in ("failed", "charged")]
    if works.count("charged") > 1:
        raise Wrong(f"your charge_once charged order {o} {works.count('charged')} times in one "
                    "delivery: call charge once per delivery.", _HINT_2)
    if len(works) > 1:
        went = f", call {works.index('charged') + 1} charged it" if "charged" in works else ""
        raise Wrong(f"charge raised for order {o} and your charge_once called it again in the "
                    f"same delivery ({len(works)} calls{went}). Retry through the broker "
                    "instead: `await message.nack(requeue=True)` and return. A loop in the "
                    "handler holds one of the consumer's prefetch slots for all its tries, "
                    "retries at once a payment service that is down, and if the consumer dies "
                    "mid-loop the broker redelivers the order and the loop starts over.", _HINT_2)
    if getattr(message, "crashed", False) and message.processed:
        return                  # it died as it settled (fault model): the broker redelivers it
    if isinstance(error, MessageProcessed):
        raise Wrong(f"your charge_once settled order {o} twice: ack or nack each delivery "
                    "exactly once.", _HINT_2)
    if error is not None and not isinstance(error, (_Failed, ConsumerCrashed)):
        if str(error) or isinstance(error, _PASS_ON):
            raise error
        raise Wrong(f"your charge_once raised {raised(error)} for order {o}.", _HINT_2)
    settles, failed = [s for s in steps if isinstance(s, tuple)], "failed" in steps
    if not settles:
        if "dup" in steps:
            raise Wrong(f"order {o} came again after it was charged (its id was in `seen`) and "
                        "your charge_once returned without acking it: it stays unacked, held "
                        "by this consumer, and comes back when its channel closes. Ack a "
                        "duplicate.", "`if message.message_id in seen:` ack and return.")
        if failed:
            raise Wrong(f"charge raised for order {o} and your charge_once did not settle the "
                        "message: it stays unacked until the channel closes. If charge raises, "
                        "`await message.nack(requeue=True)` so it is tried again.", _HINT_2)
        raise Wrong(f"your charge_once did not ack order {o}.", _HINT_2)
    how, requeue = settles[0]
    if "dup" in steps and not works and how != "acked":
        raise Wrong(f"order {o} came again after it was charged (its id was in `seen`) and "
                    f"your charge_once {how} it {'with' if requeue else 'without'} requeue: "
                    + ("the broker delivers it again and again." if requeue else
                       "the broker moved a paid order to the dead-letter queue, where it looks "
                       "like an order that failed (and replaying the dead letters brings it "
                       "back).") + " Ack a duplicate: its work is done.",
                    "`if message.message_id in seen:` `await message.ack()` and return.")
    if failed and (how == "acked" or not requeue):
        raise Wrong(f"charge raised for order {o} (nothing was charged) and your charge_once "
                    f"{how} it{'' if how == 'acked' else ' without requeue'}: the order is "
                    "never charged. If charge raises, `await message.nack(requeue=True)`.",
                    _HINT_2)


# Exercise 3 lives in its own module; importing it here registers it after the two above.
from .pubsub import publish_event  # noqa: E402,F401
