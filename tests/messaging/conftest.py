"""Fixtures for the messaging tests: one `Lab` per test on the embedded broker or on RabbitMQ.

The RabbitMQ half needs a broker at $LABKIT_AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/).
When none answers it skips with the reason, except under CI=true, where that is a failure.
"""
import asyncio
import os
import uuid

import pytest

from labkit import messaging

URL = os.environ.get("LABKIT_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
_rabbit_state: dict = {}


def _rabbit_answers() -> str | None:
    """None if RabbitMQ answers, else why not (checked once per session)."""
    if "why" not in _rabbit_state:
        async def probe():
            conn = await messaging.connect(URL, timeout_s=5)
            await conn.close()
        try:
            asyncio.run(asyncio.wait_for(probe(), 15))
            _rabbit_state["why"] = None
        except Exception as e:  # BrokerUnavailable, or anything a broken broker gives
            _rabbit_state["why"] = f"{type(e).__name__}: {e}"
    return _rabbit_state["why"]


class Lab:
    """A test's connection, unique names, a polling wait with a timeout, and cleanup."""

    def __init__(self, backend: str, conn, broker=None):
        self.backend, self.conn, self.broker = backend, conn, broker
        self.prefix = f"t-{uuid.uuid4().hex[:10]}"
        self.queues: list[str] = []
        self.exchanges: list[str] = []
        self.extra: list = []            # other connections to close

    def name(self, what: str) -> str:
        return f"{self.prefix}-{what}"

    async def connect(self):
        conn = (await messaging.connect(URL) if self.backend == "rabbitmq"
                else await messaging.connect(broker=self.broker))
        self.extra.append(conn)
        return conn

    async def queue(self, ch, what: str, **kw):
        q = await ch.declare_queue(self.name(what), **kw)
        self.queues.append(q.name)
        return q

    async def exchange(self, ch, what: str, type_: str = "direct", **kw):
        ex = await ch.declare_exchange(self.name(what), type_, **kw)
        self.exchanges.append(ex.name)
        return ex

    async def dead_letter_pair(self, ch):
        """A fanout dead-letter exchange and the queue bound to it."""
        dlx = await self.exchange(ch, "dlx", "fanout")
        dlq = await self.queue(ch, "dlq")
        await dlq.bind(dlx)
        return dlx, dlq

    @staticmethod
    async def until(predicate, timeout_s: float = 5.0, what: str = "condition"):
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while not predicate():
            if loop.time() > end:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            await asyncio.sleep(0.01)

    @staticmethod
    async def until_async(predicate, timeout_s: float = 5.0, what: str = "condition"):
        """Poll an async predicate every 20 ms until it is true (AssertionError at timeout)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while not await predicate():
            if loop.time() > end:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            await asyncio.sleep(0.02)

    async def get_all(self, queue, limit: int = 100):
        """Drain `queue` with basic.get (acking each): [(message_id, redelivered), ...]."""
        out = []
        for _ in range(limit):
            m = await queue.get(timeout_s=5)
            if m is None:
                return out
            out.append((m.message_id, m.redelivered))
            await m.ack()
        raise AssertionError(f"{queue} had more than {limit} messages")

    async def wait_get(self, queue, timeout_s: float = 5.0):
        """basic.get until a message comes (RabbitMQ dead-letters asynchronously)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while True:
            m = await queue.get(timeout_s=timeout_s)
            if m is not None:
                return m
            if loop.time() > end:
                raise AssertionError(f"no message arrived in {queue} within {timeout_s} s")
            await asyncio.sleep(0.02)

    async def cleanup(self):
        for conn in self.extra:
            await conn.close()
        if self.backend == "rabbitmq":
            admin = await messaging.connect(URL)
            for name in self.queues:
                ch = await admin.channel()
                await ch.queue_delete(name)
                await ch.close()
            for name in self.exchanges:
                ch = await admin.channel()
                await ch.exchange_delete(name)
                await ch.close()
            await admin.close()
        await self.conn.close()


@pytest.fixture(params=["embedded", "rabbitmq"])
def backend(request):
    if request.param == "rabbitmq":
        why = _rabbit_answers()
        if why is not None:
            msg = f"RabbitMQ at {URL} did not answer ({why}); the RabbitMQ half needs it"
            if os.environ.get("CI") == "true":
                pytest.fail(msg + " (CI=true: a missing broker is a failure, not a skip)")
            pytest.skip(msg)
    return request.param


@pytest.fixture
def lab_run(backend, run):
    """lab_run(body): run `await body(lab)` on a fresh connection, then clean up."""
    def runner(body, timeout_s: float = 60):
        async def main():
            if backend == "rabbitmq":
                lab = Lab(backend, await messaging.connect(URL))
            else:
                broker = messaging.Broker()
                lab = Lab(backend, await messaging.connect(broker=broker), broker)
            try:
                return await body(lab)
            finally:
                await lab.cleanup()
        return run(main(), timeout_s)
    return runner
