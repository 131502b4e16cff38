"""`labkit.broker()`: the loop's embedded broker, RabbitMQ with names namespaced per run and
deleted at shutdown, one sentence and the embedded broker when RabbitMQ does not answer.

The RabbitMQ tests reuse conftest's `backend` fixture (indirect, "rabbitmq" only), so they skip
without a broker and fail under CI=true exactly like the conformance suite.
"""
import asyncio
import os
import re
import threading
import uuid

import pytest

import labkit
from labkit import messaging
from labkit.messaging import BrokerUnavailable, Message, NotFound, api

URL = os.environ.get("LABKIT_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
DEAD_URL = "amqp://guest:s3cret@127.0.0.1:1/"
RABBIT = pytest.mark.parametrize("backend", ["rabbitmq"], indirect=True)


@pytest.fixture(autouse=True)
def _no_env_url(monkeypatch):
    monkeypatch.delenv("LABKIT_AMQP_URL", raising=False)


async def _wait_get(queue, timeout_s=10.0):
    """basic.get until a message comes (RabbitMQ dead-letters asynchronously)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while (m := await queue.get(timeout_s=timeout_s)) is None:
        if loop.time() > end:
            raise AssertionError(f"no message arrived in {queue} within {timeout_s} s")
        await asyncio.sleep(0.02)
    return m


async def _publish(ch, queue_name, mid):
    assert await ch.default_exchange.publish(Message(mid.encode(), message_id=mid),
                                             routing_key=queue_name)


# --- embedded -------------------------------------------------------------------------------

def test_embedded_broker_is_shared_within_a_loop_and_fresh_after_shutdown(run):
    async def main():
        a, b = await labkit.broker(), await labkit.broker()
        assert (a.backend, b.backend) == ("embedded", "embedded") and a is not b
        assert a.broker is b.broker is messaging.embedded_broker()
        assert a.journal is a.broker.journal
        ch = await a.channel()
        await ch.declare_queue("kitchen", durable=True)
        await _publish(ch, "kitchen", "o-1")
        q = await (await b.channel()).get_queue("kitchen")       # a cell sees another's queue
        assert await q.status() == {"ready": 1, "consumers": 0}
        first = a.broker
        summary = await labkit.shutdown()
        assert summary["broker_connections"] == 2 and a.is_closed and b.is_closed
        c = await labkit.broker()
        assert c.broker is not first and messaging.embedded_broker() is c.broker
        with pytest.raises(NotFound):
            await (await c.channel()).get_queue("kitchen")
        assert (await labkit.shutdown())["broker_connections"] == 1
    run(main())


def test_a_new_loop_gets_its_own_embedded_broker_and_run_id(run):
    async def first():
        return (await labkit.broker()).broker, messaging.run_id(), messaging.run_id()

    async def second():
        conn = await labkit.broker()
        out = conn.broker, messaging.run_id()
        await labkit.shutdown()
        return out
    b1, id1, id1_again = run(first())
    b2, id2 = run(second())
    assert b2 is not b1 and id1 == id1_again and id2 != id1
    assert re.fullmatch(r"[0-9a-f]{8}", id1)


def test_the_embedded_session_runs_in_virtual_time():
    async def main():
        conn = await labkit.broker()
        ch = await conn.channel()
        q = await ch.declare_queue("kitchen", arguments={"x-message-ttl": 60_000})
        await _publish(ch, "kitchen", "o-1")
        await asyncio.sleep(59)                                  # virtual seconds
        before = await q.status()
        await asyncio.sleep(2)                                   # past the 60 s TTL: expired
        after = await q.status()
        summary = await labkit.shutdown()
        return before, after, conn.journal.counts["dropped:expired"], summary
    before, after, expired, summary = labkit.sim.run(main)
    assert (before["ready"], after["ready"], expired) == (1, 0, 1)
    assert summary["broker_connections"] == 1


def test_embedded_broker_outside_a_loop_says_how_to_call_it():
    with pytest.raises(RuntimeError, match="needs a running event loop"):
        messaging.embedded_broker()


# --- unreachable and malformed URLs ---------------------------------------------------------

def test_unreachable_url_prints_one_sentence_and_goes_on_with_the_embedded_broker(
        run, capsys, caplog):
    async def main():
        conn = await labkit.broker(url=DEAD_URL)
        out = conn.backend, conn.broker is messaging.embedded_broker()
        await labkit.shutdown()
        return out
    assert run(main()) == ("embedded", True)
    out = capsys.readouterr()
    assert out.out == ("RabbitMQ did not answer at amqp://guest:***@127.0.0.1:1/ (connection "
                       "refused within 3 s); this chapter goes on with the embedded broker.\n")
    assert out.err == ""
    assert not [r for r in caplog.records if "transport" in r.getMessage()]


def test_the_url_can_come_from_the_environment(run, capsys, monkeypatch):
    monkeypatch.setenv("LABKIT_AMQP_URL", DEAD_URL)

    async def main():
        backend = (await labkit.broker(timeout_s=2)).backend
        await labkit.shutdown()
        return backend
    assert run(main()) == "embedded"
    assert "did not answer at amqp://guest:***@127.0.0.1:1/ (connection refused within 2 s)" \
        in capsys.readouterr().out


def test_without_fallback_an_unreachable_url_raises_the_sentence(run, capsys):
    async def main():
        with pytest.raises(BrokerUnavailable) as e:
            await labkit.broker(url=DEAD_URL, fallback=False)
        await labkit.shutdown()
        return str(e.value)
    text = run(main())
    assert text.startswith("RabbitMQ did not answer at amqp://guest:***@127.0.0.1:1/ "
                           "(connection refused within 3 s); start it")
    assert "s3cret" not in text and capsys.readouterr().out == ""


@pytest.mark.parametrize("url", ["http://guest:pw@127.0.0.1:5672/", "127.0.0.1:5672",
                                 "amqp://guest:pw@127.0.0.1:port/", "amqp:///"])
def test_a_malformed_url_is_a_value_error_naming_url_without_the_password(run, url):
    async def main():
        with pytest.raises(ValueError, match=r"^url ") as e:
            await labkit.broker(url=url)
        await labkit.shutdown()
        return str(e.value)
    assert ":pw@" not in run(main())


@pytest.mark.parametrize("kw, name", [({"timeout_s": 0}, "timeout_s"), ({"fallback": 1},
                                      "fallback"), ({"url": 5672}, "url")])
def test_bad_arguments_are_value_errors_naming_them(run, kw, name):
    async def main():
        with pytest.raises(ValueError, match=f"^{name} "):
            await labkit.broker(**kw)
    run(main())


def test_a_malformed_url_from_the_environment_names_the_variable(run, monkeypatch):
    monkeypatch.setenv("LABKIT_AMQP_URL", "http://127.0.0.1:5672/")

    async def main():
        with pytest.raises(ValueError, match=r"^url \(from \$LABKIT_AMQP_URL\)"):
            await labkit.broker()
        await labkit.shutdown()
    run(main())


# --- RabbitMQ -------------------------------------------------------------------------------

def _rabbit(run, body):
    """Run `await body(conn)` on a namespaced RabbitMQ connection; shutdown cleans up."""
    async def main():
        conn = await labkit.broker(url=URL, fallback=False)
        try:
            return await body(conn)
        finally:
            await labkit.shutdown()
    return run(main())


@RABBIT
def test_rabbitmq_names_live_under_the_run_prefix_and_shutdown_deletes_them(backend, run):
    kitchen = f"kitchen-{uuid.uuid4().hex[:6]}"       # unique: proves the bare name is unused

    async def body(conn):
        assert (conn.backend, conn.broker) == ("rabbitmq", None)
        ns = conn.namespace
        assert ns == f"lk-{messaging.run_id()}." and re.fullmatch(r"lk-[0-9a-f]{8}\.", ns)
        ch = await conn.channel()
        q = await ch.declare_queue(kitchen, durable=True)
        orders = await ch.declare_exchange("orders", "direct")
        await q.bind(orders, routing_key="new")
        assert (q.name, orders.name) == (kitchen, "orders")
        await _publish(ch, kitchen, "o-1")                         # default exchange, bare name
        assert await orders.publish(Message(b"o", message_id="o-2"), routing_key="new")
        got = [await _wait_get(q), await _wait_get(q)]
        assert [(m.message_id, m.queue, m.exchange, m.routing_key) for m in got] == \
            [("o-1", kitchen, "", kitchen), ("o-2", kitchen, "orders", "new")]
        for m in got:
            await m.ack()
        assert {e.queue for e in conn.journal.events if e.kind == "delivered"} == {kitchen}
        assert (await ch.get_queue(kitchen)).name == kitchen
        assert (await ch.get_exchange("orders")).name == "orders"     # looked up by bare name
        raw = await messaging.connect(URL)
        try:
            rch = await raw.channel()
            await rch.get_queue(ns + kitchen)                       # on the server: prefixed
            with pytest.raises(NotFound):
                await rch.get_queue(kitchen)                        # the bare name: absent
            summary = await labkit.shutdown()
            assert summary["broker_problems"] == [] and summary["broker_names_deleted"] == 2
            assert summary["broker_connections"] == 1 and conn.is_closed
            with pytest.raises(NotFound):
                await (await raw.channel()).get_queue(ns + kitchen)
            probe = await (await raw.channel()).declare_queue("", exclusive=True)
            with pytest.raises(NotFound):                           # the exchange is gone too
                await probe.bind(ns + "orders", routing_key="new")
        finally:
            await raw.close()
    _rabbit(run, body)


@RABBIT
def test_dead_letters_reach_the_namespaced_queue_and_x_death_shows_bare_names(backend, run):
    async def body(conn):
        ch = await conn.channel()
        dlx = await ch.declare_exchange("dead", "fanout")
        dlq = await ch.declare_queue("dead-letters")
        await dlq.bind(dlx)
        q = await ch.declare_queue("kitchen", arguments={"x-dead-letter-exchange": "dead"})
        await _publish(ch, "kitchen", "o-1")
        await (await _wait_get(q)).reject(requeue=False)
        d = await _wait_get(dlq)
        assert (d.message_id, d.queue, d.exchange, d.routing_key) == \
            ("o-1", "dead-letters", "dead", "kitchen")
        death = d.headers["x-death"][0]
        assert (death["queue"], death["exchange"], list(death["routing-keys"]),
                death["reason"]) == ("kitchen", "", ["kitchen"], "rejected")
        assert d.headers["x-first-death-queue"] == "kitchen"
        await d.ack()
        # through the default exchange the dead-letter routing key names a queue: namespaced
        q2 = await ch.declare_queue("kitchen-2", arguments={
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead-letters"})
        await _publish(ch, "kitchen-2", "o-2")
        await (await _wait_get(q2)).reject(requeue=False)
        d2 = await _wait_get(dlq)
        assert (d2.message_id, d2.queue, d2.exchange, d2.routing_key) == \
            ("o-2", "dead-letters", "", "dead-letters")
        await d2.ack()
        assert [(e.queue, e.reason) for e in conn.journal.events
                if e.kind == "dead_lettered"] == [("kitchen", "rejected"),
                                                  ("kitchen-2", "rejected")]
    _rabbit(run, body)


@RABBIT
def test_two_runs_declare_the_same_names_without_colliding(backend):
    """Two kernels (two loops in two threads) use `kitchen` at the same time."""
    barrier, results, errors = threading.Barrier(2, timeout=60), {}, []

    def kernel(who):
        async def main():
            conn = await labkit.broker(url=URL, fallback=False)
            try:
                ch = await conn.channel()
                q = await ch.declare_queue("kitchen")
                await _publish(ch, "kitchen", who)
                await asyncio.to_thread(barrier.wait)               # both published
                got = []
                while (m := await q.get(timeout_s=5)) is not None:
                    got.append(m.message_id)
                    await m.ack()
                await asyncio.to_thread(barrier.wait)               # both drained
                results[who] = (conn.namespace, got)
            finally:
                results[who + ":deleted"] = (await labkit.shutdown())["broker_names_deleted"]
        try:
            asyncio.run(asyncio.wait_for(main(), 90))
        except BaseException as e:  # reported below, in the test's thread
            barrier.abort()
            errors.append(f"{who}: {type(e).__name__}: {e}")
    threads = [threading.Thread(target=kernel, args=(w,)) for w in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert results["a"][1] == ["a"] and results["b"][1] == ["b"]
    assert results["a"][0] != results["b"][0]
    assert results["a:deleted"] == results["b:deleted"] == 1


@RABBIT
def test_shutdown_never_raises_when_the_broker_went_away(backend, run, monkeypatch):
    async def main():
        conn = await labkit.broker(url=URL, fallback=False)
        ns = conn.namespace
        await (await conn.channel()).declare_queue("kitchen")

        async def gone(*args, **kw):
            raise BrokerUnavailable("nobody home")
        monkeypatch.setattr(api, "connect", gone)
        try:
            summary = await labkit.shutdown()
        finally:
            monkeypatch.undo()
        raw = await messaging.connect(URL)                          # clean up by hand
        await (await raw.channel()).queue_delete(ns + "kitchen")
        await raw.close()
        return ns, summary, conn.is_closed
    ns, summary, closed = run(main())
    assert closed and summary["broker_names_deleted"] == 0
    assert len(summary["broker_problems"]) == 1
    assert "did not answer" in summary["broker_problems"][0]
    assert f"{ns}*" in summary["broker_problems"][0]


def test_a_learners_handler_error_is_logged_a_bounded_number_of_times(run, caplog):
    """A handler that raises is invisible on a bare broker (as in the checks' own brokers), but
    labkit.broker()'s broker logs the first few, so a learner sees why nothing was cooked."""
    from labkit.messaging.broker import LOGGED_ERRORS

    async def main():
        for conn in (await messaging.connect(), await labkit.broker()):
            ch = await conn.channel()
            q = await ch.declare_queue("rail")
            for i in range(LOGGED_ERRORS + 3):
                await _publish(ch, "rail", f"t-{i}")

            async def broken(message):
                raise NameError("name 'cook' is not defined")
            await q.consume(broken)
            for _ in range(100):
                await asyncio.sleep(0.01)
        await labkit.shutdown()

    with caplog.at_level("WARNING", logger="labkit.messaging"):
        run(main())
    logged = [r for r in caplog.records if r.name == "labkit.messaging"]
    assert len(logged) == LOGGED_ERRORS
    assert "NameError" in logged[0].getMessage() and "stays unacked" in logged[0].getMessage()
