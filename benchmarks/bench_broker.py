"""Embedded broker vs RabbitMQ (through aio-pika): publish -> deliver -> ack, same code.

Both run the same labkit.messaging calls on a real asyncio loop (wall-clock time): a
publisher awaits each publisher confirm, one consumer with prefetch 100 acks each message.
Prints, per backend, the throughput (messages/s from the first publish to the last ack) and
the median round trip of one message (publish until its handler has acked it, one at a time),
then the ratio embedded / RabbitMQ (the chapter's goal: at least 10x). Rounds are interleaved
so machine noise hits both alike. RabbitMQ is skipped with a note if none answers.

    .venv/bin/python benchmarks/bench_broker.py [--messages 5000] [--trips 300] [--rounds 3]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid

from labkit import messaging
from labkit.messaging import Message

URL = os.environ.get("LABKIT_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


async def _open(backend: str):
    conn = await (messaging.connect(URL) if backend == "rabbitmq"
                  else messaging.connect(broker=messaging.Broker()))
    ch = await conn.channel()
    await ch.set_qos(prefetch_count=100)
    q = await ch.declare_queue(f"bench-{uuid.uuid4().hex[:8]}", auto_delete=True)
    return conn, ch, q


async def throughput(backend: str, n: int, timeout_s: float = 300) -> float:
    """Messages per second, publish (confirmed) -> deliver -> ack, for n messages."""
    conn, ch, q = await _open(backend)
    done = asyncio.Event()
    acked = 0

    async def handle(message):
        nonlocal acked
        await message.ack()
        acked += 1
        if acked == n:
            done.set()
    await q.consume(handle)
    start = time.perf_counter()
    for i in range(n):
        await ch.default_exchange.publish(Message(b"order", message_id=str(i)), q.name)
        if i % 256 == 0:
            await asyncio.sleep(0)          # let the consumer run, as real I/O would
    await asyncio.wait_for(done.wait(), timeout_s)
    elapsed = time.perf_counter() - start
    await conn.close()
    return n / elapsed


async def round_trip(backend: str, trips: int, timeout_s: float = 30) -> float:
    """Median seconds from publish to the handler's ack, one message at a time."""
    conn, ch, q = await _open(backend)
    acked: asyncio.Queue = asyncio.Queue()

    async def handle(message):
        await message.ack()
        acked.put_nowait(time.perf_counter())
    await q.consume(handle)
    samples = []
    for i in range(trips):
        start = time.perf_counter()
        await ch.default_exchange.publish(Message(b"ping", message_id=str(i)), q.name)
        samples.append(await asyncio.wait_for(acked.get(), timeout_s) - start)
    await conn.close()
    return statistics.median(samples)


async def main(messages: int, trips: int, rounds: int) -> None:
    backends = ["embedded", "rabbitmq"]
    try:
        await (await messaging.connect(URL)).close()
    except messaging.BrokerUnavailable as e:
        print(f"note: {e}; measuring the embedded broker only")
        backends = ["embedded"]
    rate = {b: [] for b in backends}
    rtt = {b: [] for b in backends}
    for _ in range(rounds):
        for b in backends:
            rate[b].append(await throughput(b, messages))
            rtt[b].append(await round_trip(b, trips))
    print(f"publish(confirm) -> deliver -> ack, {messages} messages, prefetch 100, "
          f"median of {rounds} rounds")
    for b in backends:
        print(f"  {b:9s} {statistics.median(rate[b]):10.0f} msg/s   "
              f"median round trip {statistics.median(rtt[b]) * 1e6:8.0f} us")
    if len(backends) == 2:
        ratio = statistics.median(rate["embedded"]) / statistics.median(rate["rabbitmq"])
        print(f"  embedded / rabbitmq throughput: {ratio:.1f}x (goal >= 10x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--trips", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.trips, args.rounds))
