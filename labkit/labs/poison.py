"""Poison messages and duplicates (chapter 02), in virtual time on the embedded broker.

`poison_lab`: a backlog of `messages` orders on one classic queue, worked by the tutorial's
consumer (2 consumers, `prefetch_count=1`, 10 ms of work per delivery), where `poison` orders
always fail. Policies:

- "requeue-forever": the tutorial's `nack(requeue=True)` on every failure. A requeued message
  goes back to its old place, the head of the queue, so it is redelivered at once, forever:
  one consumer's worth of CPU goes to a message that can never succeed, good orders wait about
  twice as long, and the run never ends by itself (it stops at `seconds` of virtual time, with
  the poison still in the queue: the checker counts it as not accounted for).
- "retry-then-dead-letter": `labkit.messaging.consumers.ack_after(retries=1)`: requeue the
  first failure, `reject(requeue=False)` the redelivered one to the dead-letter exchange: 2
  deliveries (chapter 02's exercise 1 writes this handler).
- "delivery-limit": the tutorial's handler unchanged, on a quorum queue with
  `x-delivery-limit: 1`: the broker itself dead-letters after 2 deliveries.

`duplicates_lab`: the broker's fault model kills consumers after their work but before the ack
(`crash_rate`); the broker redelivers and the charge is applied again, unless the consumer is
`idempotent` (a bounded `SeenStore` of message ids). Times are virtual seconds; latencies ms.
"""
from __future__ import annotations

import asyncio

from labkit import sim
from labkit._core import validate
from labkit.messaging import Broker, BrokerFaults, DeliveryChecker, Message, connect
from labkit.messaging.consumers import SeenStore, ack_after
from labkit.messaging.consumers import idempotent as _idempotent
from labkit.obs.metrics import percentile

__all__ = ["POLICIES", "MODEL", "poison_lab", "duplicates_lab"]

POLICIES = ("requeue-forever", "retry-then-dead-letter", "delivery-limit")
MODEL = {"consumers": 2, "prefetch": 1, "work_s": 0.010, "max_deliveries": 2}
_TICK_S = 0.01


async def _topology(ch, policy):
    dlx = await ch.declare_exchange("orders.dlx", "fanout")
    dlq = await ch.declare_queue("orders.dlq")
    await dlq.bind(dlx)
    args = {"x-dead-letter-exchange": "orders.dlx"}
    if policy == "delivery-limit":
        args.update({"x-queue-type": "quorum",
                     "x-delivery-limit": MODEL["max_deliveries"] - 1})
    return await ch.declare_queue("orders", durable=policy == "delivery-limit", arguments=args)


def poison_lab(*, policy: str, messages: int = 200, poison: int = 1, seconds: float = 5.0,
               seed: int = 0) -> dict:
    """Run one policy (see the module docstring); returns a plain dict for the notebook."""
    policy = validate.choice("policy", policy, POLICIES)
    messages = validate.integer("messages", messages, 1, 100_000)
    poison = validate.integer("poison", poison, 0, messages)
    seconds = validate.number("seconds", seconds, 0, 3600, lo_open=True, unit=" s (virtual)")
    seed = validate.integer("seed", seed)
    order = sim.rng("poison-lab", seed)
    bad = {f"o{i}" for i in order.sample(range(messages), poison)}

    async def main():
        broker = Broker()
        checker = DeliveryChecker()
        broker.journal.subscribe(checker.observe)
        conn = await connect(broker=broker)
        ch = await conn.channel()
        q = await _topology(ch, policy)
        loop = asyncio.get_running_loop()
        deliveries: dict[str, int] = {}
        done: dict[str, float] = {}
        busy = {"good": 0.0, "poison": 0.0}

        async def work(m):
            deliveries[m.message_id] = deliveries.get(m.message_id, 0) + 1
            await asyncio.sleep(MODEL["work_s"])
            busy["poison" if m.message_id in bad else "good"] += MODEL["work_s"]
            if m.message_id in bad:
                raise ValueError(f"order {m.message_id} cannot be parsed")
            done[m.message_id] = loop.time()

        async def tutorial(m):            # the tutorial's consumer: requeue on every failure
            try:
                await work(m)
            except ValueError:
                await m.nack(requeue=True)
                return
            broker.journal.handled(m)
            await m.ack()

        handler = (ack_after(work, retries=MODEL["max_deliveries"] - 1, journal=broker.journal)
                   if policy == "retry-then-dead-letter" else tutorial)
        for _ in range(MODEL["consumers"]):
            c = await conn.channel()
            await c.set_qos(prefetch_count=MODEL["prefetch"])
            await (await c.get_queue("orders")).consume(handler)
        for i in range(messages):
            await ch.default_exchange.publish(Message(b"order", message_id=f"o{i}"),
                                              routing_key=q.name)
        while loop.time() < seconds:
            info = broker.queue_info("orders")
            if not info["ready"] and not info["unacked"]:
                break
            await asyncio.sleep(_TICK_S)
        ended = loop.time()
        info = broker.queue_info("orders")
        dlq = sorted(m.message_id for _, m in broker.queues["orders.dlq"].ready)
        await conn.close()
        return deliveries, done, busy, info, dlq, ended, checker.result()

    deliveries, done, busy, info, dlq, ended, checker = sim.run(main, seed=seed,
                                                                until_s=seconds + 60)
    lat = [t * 1000 for mid, t in done.items()]          # all published at t=0
    total_busy = busy["good"] + busy["poison"]
    return {
        "policy": policy, "messages": messages, "poison_ids": sorted(bad),
        "poison_deliveries": {mid: deliveries.get(mid, 0) for mid in sorted(bad)},
        "good_done": len(done), "good_waiting": messages - poison - len(done),
        "good_latency_p50_ms": round(percentile(lat, 50), 3) if lat else None,
        "good_latency_p99_ms": round(percentile(lat, 99), 3) if lat else None,
        "good_latency_max_ms": round(max(lat), 3) if lat else None,
        "cpu_busy_s": round(total_busy, 6), "cpu_wasted_s": round(busy["poison"], 6),
        "wasted_share": round(busy["poison"] / total_busy, 4) if total_busy else 0.0,
        "ended_s": round(ended, 6), "finished": not info["ready"] and not info["unacked"],
        "still_in_queue": info["ready"] + info["unacked"], "dlq_ids": dlq,
        "checker": checker,
    }


def duplicates_lab(*, crash_rate: float, idempotent: bool, messages: int = 1000,
                   seed: int = 0) -> dict:
    """Charges applied per order when consumers crash before their ack (see the docstring).

    Consumers: 2, prefetch 10, 5 ms of work. Returns the checker (duplicates, lost), charges
    per order (max, total extra), how many redeliveries an idempotent consumer skipped.
    """
    crash_rate = validate.number("crash_rate", crash_rate, 0.0, 0.9)
    dedupe = validate.boolean("idempotent", idempotent)
    messages = validate.integer("messages", messages, 1, 100_000)
    seed = validate.integer("seed", seed)

    async def main():
        broker = Broker()
        checker = DeliveryChecker()
        broker.journal.subscribe(checker.observe)
        faults = BrokerFaults(broker, crash_rate=crash_rate, processing_s=0.005, seed=seed)
        conn = await connect(broker=broker)
        ch = await conn.channel()
        q = await ch.declare_queue("payments")
        charges: dict[str, int] = {}

        def charge(m):
            charges[m.message_id] = charges.get(m.message_id, 0) + 1
        handler = (_idempotent(charge, store=SeenStore(messages), journal=broker.journal)
                   if dedupe else ack_after(charge, journal=broker.journal))
        for _ in range(2):
            c = await conn.channel()
            await c.set_qos(prefetch_count=10)
            await (await c.get_queue("payments")).consume(handler)
        for i in range(messages):
            await ch.default_exchange.publish(Message(b"9.99", message_id=f"pay-{i}"),
                                              routing_key=q.name)
        loop = asyncio.get_running_loop()
        while loop.time() < 3600:
            info = broker.queue_info("payments")
            if not info["ready"] and not info["unacked"]:
                break
            await asyncio.sleep(_TICK_S)
        await conn.close()
        return charges, handler.skipped, faults.crashes, loop.time(), checker.result()

    charges, skipped, crashes, ended, checker = sim.run(main, seed=seed, until_s=3700)
    return {
        "crash_rate": crash_rate, "idempotent": dedupe, "messages": messages,
        "crashes": crashes, "redelivered": checker["redelivered"], "skipped": skipped,
        "orders_charged": len(charges), "max_charges_per_order": max(charges.values(), default=0),
        "extra_charges": sum(charges.values()) - len(charges),
        "duplicates": checker["duplicates"], "lost": checker["lost"],
        "ended_s": round(ended, 6), "checker": checker,
    }
