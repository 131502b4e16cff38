"""Request/reply over a queue (chapter 02), on the embedded broker and on RabbitMQ: round trip,
concurrent calls each get their own reply, a timeout names the queue and correlation id, a late
reply is counted and dropped, errors travel back, bad arguments are refused."""
import asyncio

import pytest

from labkit import messaging, sim
from labkit.messaging import rpc
from labkit.messaging.rpc import (RpcBusy, RpcClient, RpcClosed, RpcRemoteError, RpcTimeout,
                                  RpcUnroutable, serve)


def test_round_trip_over_an_exclusive_server_named_reply_queue(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        q = await lab.queue(ch, "upper")
        requests = []

        def handler(b: bytes) -> bytes:
            requests.append(b)
            return b.upper()
        await serve(ch, q.name, handler)
        client = await RpcClient.create(ch, q.name, timeout_s=5)
        assert await client.call(b"hello") == b"HELLO"
        assert await client.call(b"again") == b"AGAIN"
        assert requests == [b"hello", b"again"]
        await lab.until(lambda: len(_replied_then_acked(lab.conn.journal)) == 2,
                        what="both requests acked")
        assert (client.calls, client.replies, client.late_replies) == (2, 2, 0)
        assert client.reply_to.startswith("amq.gen-") and client.pending == 0
        other = await lab.connect()                  # exclusive: no other connection reads it
        with pytest.raises(messaging.ResourceLocked):
            other_q = await (await other.channel()).get_queue(client.reply_to)
            await other_q.consume(_ignore)
        await client.close()
    lab_run(body)


async def _ignore(message):
    pass


def test_concurrent_calls_get_their_own_replies(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        q = await lab.queue(ch, "echo")

        async def handler(b: bytes) -> bytes:
            n = int(b)
            await asyncio.sleep(0.001 * (20 - n))     # later requests answered first
            return b"reply-" + b
        await serve(ch, q.name, handler)
        client = await RpcClient.create(ch, q.name, timeout_s=10)
        replies = await asyncio.gather(*(client.call(str(i).encode()) for i in range(20)))
        assert replies == [f"reply-{i}".encode() for i in range(20)]
        assert client.replies == 20 and client.late_replies == 0
        await client.close()
    lab_run(body)


def test_timeout_when_no_server_names_queue_and_correlation_id(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        q = await lab.queue(ch, "nobody")
        client = await RpcClient.create(ch, q.name, timeout_s=0.2)
        with pytest.raises(RpcTimeout) as caught:
            await client.call(b"anyone?")
        e = caught.value
        assert isinstance(e, TimeoutError) and e.queue == q.name and e.timeout_s == 0.2
        assert q.name in str(e) and e.correlation_id in str(e)
        assert client.timeouts == 1 and client.pending == 0
        with pytest.raises(RpcTimeout):
            await client.call(b"again", timeout_s=0.05)
        await client.close()
    lab_run(body)


def test_late_reply_is_counted_and_never_answers_another_call(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        q = await lab.queue(ch, "slow")
        release = asyncio.Event()

        async def handler(b: bytes) -> bytes:
            if b == b"slow":
                await release.wait()
            return b"for-" + b
        await serve(ch, q.name, handler)
        client = await RpcClient.create(ch, q.name, timeout_s=5)
        with pytest.raises(RpcTimeout):
            await client.call(b"slow", timeout_s=0.2)
        release.set()
        await lab.until(lambda: client.late_replies == 1, what="the late reply")
        assert await client.call(b"fast") == b"for-fast"     # not the late b"for-slow"
        assert (client.late_replies, client.unknown_replies, client.replies) == (1, 0, 1)
        # a reply nobody asked for is counted as unknown
        await ch.default_exchange.publish(
            messaging.Message(b"?", correlation_id="never-issued"), routing_key=client.reply_to)
        await lab.until(lambda: client.unknown_replies == 1, what="the unknown reply")
        assert client.late_replies == 2
        await client.close()
    lab_run(body)


def test_handler_error_comes_back_as_remote_error_and_request_is_acked(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        q = await lab.queue(ch, "fails")

        def handler(b: bytes) -> bytes:
            if b == b"bad":
                raise ValueError("no such sku")
            return "not bytes"
        await serve(ch, q.name, handler)
        client = await RpcClient.create(ch, q.name, timeout_s=5)
        with pytest.raises(RpcRemoteError, match="ValueError.*no such sku"):
            await client.call(b"bad")
        with pytest.raises(RpcRemoteError, match="must return bytes"):
            await client.call(b"ok")
        await lab.until(lambda: len(_replied_then_acked(lab.conn.journal)) == 2,
                        what="both requests acked")
        await client.close()
    lab_run(body)


def _replied_then_acked(journal) -> list[str]:
    """Request ids acked after their reply was published (the order serve promises);
    AssertionError for a request acked before its reply."""
    published, acked = set(), []
    for e in journal.events:
        if e.kind == "published":
            published.add(e.message_id)
        elif e.kind == "acked" and e.reason != "auto":
            assert f"{e.message_id}:reply" in published, f"{e.message_id} acked before its reply"
            acked.append(e.message_id)
    return acked


def test_request_to_a_missing_queue_is_returned_at_once(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        client = await RpcClient.create(ch, lab.name("missing"), timeout_s=5)
        with pytest.raises(RpcUnroutable, match="no queue named"):
            await client.call(b"x")
        assert client.pending == 0
        await client.close()
    lab_run(body)


def test_close_deletes_the_reply_queue_and_refuses_calls(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        q = await lab.queue(ch, "svc")
        client = await RpcClient.create(ch, q.name, timeout_s=5)
        waiting = asyncio.create_task(client.call(b"x"))
        await lab.until(lambda: client.pending == 1, what="the call to be sent")
        await client.close()
        with pytest.raises(RpcClosed):
            await waiting
        with pytest.raises(RpcClosed):
            await client.call(b"y")
        ch2 = await lab.conn.channel()
        with pytest.raises(messaging.NotFound):
            await ch2.get_queue(client.reply_to)
    lab_run(body)


def test_max_pending_is_enforced_in_virtual_time():
    async def main():
        conn = await messaging.connect()
        ch = await conn.channel()
        await ch.declare_queue("svc")          # no server: calls wait for their timeout
        client = await RpcClient.create(ch, "svc", timeout_s=1.0, max_pending=2)
        calls = [asyncio.create_task(client.call(b"a")) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(RpcBusy, match="max_pending=2"):
            await client.call(b"b")
        results = await asyncio.gather(*calls, return_exceptions=True)
        t = asyncio.get_running_loop().time()
        await client.close()
        await conn.close()
        return results, t
    results, t = sim.run(main, until_s=60)
    assert all(isinstance(r, RpcTimeout) for r in results) and t == 1.0


def test_bad_arguments():
    async def main():
        conn = await messaging.connect()
        ch = await conn.channel()
        await ch.declare_queue("svc")
        with pytest.raises(ValueError, match="queue_name must be a non-empty str"):
            await RpcClient.create(ch, "")
        with pytest.raises(ValueError, match="timeout_s must be a finite number > 0"):
            await RpcClient.create(ch, "svc", timeout_s=0)
        with pytest.raises(ValueError, match="max_pending must be a whole number"):
            await RpcClient.create(ch, "svc", max_pending=0)
        with pytest.raises(ValueError, match="handler must be a function"):
            await serve(ch, "svc", None)
        client = await RpcClient.create(ch, "svc")
        with pytest.raises(ValueError, match="body must be bytes .encode"):
            await client.call("text")
        with pytest.raises(ValueError, match="timeout_s must be"):
            await client.call(b"x", timeout_s=-1)
        await client.close()
        await conn.close()
    sim.run(main, until_s=60)
    assert rpc.ERROR_HEADER == "x-rpc-error"
