"""Server push (labkit/protocols/push.py, push_client.py; chapter 03): WebSocket and SSE on a
real socket, resume after drops without loss or repeats, heartbeats, close codes, the polling
endpoint, bounded history, shutdown, bad arguments. Counts and orders only, no timing."""
import asyncio
import json

import aiohttp
import pytest

import labkit
from labkit.patterns.backoff import FullJitter
from labkit.protocols.push import PushService, start_push_service
from labkit.protocols.push_client import (PushClosed, ResumeTooOld, ResumingWebSocket, SSEEvent,
                                          SSEParser, follow_events, sse_events)

FAST = FullJitter(base=0.001, cap=0.01)


async def until(condition, timeout_s=20.0):
    for _ in range(int(timeout_s / 0.01)):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


async def consume(feed, into):
    async for event in feed:
        into.append(event)


# ---- WebSocket ------------------------------------------------------------------------------

def test_websocket_round_trip_hello_then_events_in_order(run):
    async def main():
        svc = await start_push_service(seed=1)
        await svc.emit("order-1", "placed")             # before the client: not sent
        async with aiohttp.ClientSession() as s, s.ws_connect(svc.url + "/ws") as ws:
            hello = await ws.receive_json(timeout=5)
            for status in ("paid", "packed", "shipped"):
                await svc.emit("order-1", status)
            got = [await ws.receive_json(timeout=5) for _ in range(3)]
        await labkit.shutdown()
        return hello, got
    hello, got = run(main())
    assert hello == {"hello": True, "last_id": 1}
    assert got == [{"id": 2, "order": "order-1", "status": "paid"},
                   {"id": 3, "order": "order-1", "status": "packed"},
                   {"id": 4, "order": "order-1", "status": "shipped"}]


def test_resume_with_a_message_or_a_query_sends_what_was_missed(run):
    async def main():
        svc = await start_push_service(seed=1)
        for i in range(5):
            await svc.emit(f"o{i}", "paid")
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(svc.url + "/ws") as ws:
                await ws.receive_json(timeout=5)
                await ws.send_json({"resume_after": 2})
                by_message = [(await ws.receive_json(timeout=5))["id"] for _ in range(3)]
            async with s.ws_connect(svc.url + "/ws?after=3") as ws:
                await ws.receive_json(timeout=5)
                by_query = [(await ws.receive_json(timeout=5))["id"] for _ in range(2)]
        await labkit.shutdown()
        return by_message, by_query
    assert run(main()) == ([3, 4, 5], [4, 5])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_resuming_client_survives_many_drops_without_loss_or_repeat(run, seed):
    async def main():
        svc = await start_push_service(seed=seed)
        got = []
        feed = ResumingWebSocket(svc.url, last_id=0, backoff=FAST)
        task = asyncio.ensure_future(consume(feed, got))
        svc.drop_rate = 0.05
        for i in range(300):
            await svc.emit(f"order-{i % 7}", "paid")
            if i == 150:
                svc.drop_connections()               # and one cut by hand
        assert await until(lambda: len(got) >= 300)
        await labkit.shutdown()
        await asyncio.wait_for(task, 10)
        return got, feed, svc
    got, feed, svc = run(main())
    assert [e["id"] for e in got] == list(range(1, 301))
    assert feed.reconnects >= 5 and svc.counts["dropped"] >= 5
    assert feed.received == 300 and feed.close_code == 1001


def test_client_drops_repeats_the_server_sends_again(run):
    async def main():
        svc = await start_push_service(seed=1)
        for i in range(4):
            await svc.emit("o", str(i))
        feed = ResumingWebSocket(svc.url, last_id=0, backoff=FAST)
        first = [await asyncio.wait_for(feed.__anext__(), 5) for _ in range(4)]
        await feed._ws.send_json({"resume_after": 1})   # the server replays 2, 3, 4
        assert await until(lambda: svc.counts["ws_sent"] == 7)
        await svc.emit("o", "new")
        fifth = await asyncio.wait_for(feed.__anext__(), 5)
        await feed.close()
        await labkit.shutdown()
        return first, fifth, feed
    first, fifth, feed = run(main())
    assert [e["id"] for e in first] == [1, 2, 3, 4] and fifth["id"] == 5
    assert feed.repeats_dropped == 3


def test_heartbeat_pings_keep_an_idle_connection_and_close_a_silent_one(run):
    async def main():
        svc = await start_push_service(seed=1, heartbeat_s=0.05)
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(svc.url + "/ws", autoping=False) as ws:
                await ws.receive_json(timeout=5)
                pings = 0
                while pings < 4:                         # answer four pings, then idle is fine
                    msg = await ws.receive(timeout=5)
                    assert msg.type == aiohttp.WSMsgType.PING
                    pings += 1
                    await ws.pong(msg.data)
                await svc.emit("o", "still here")
                while (msg := await ws.receive(timeout=5)).type == aiohttp.WSMsgType.PING:
                    await ws.pong(msg.data)
                alive = json.loads(msg.data)
                kinds = []                               # stop answering: the server gives up
                while not ws.closed:
                    kinds.append((await ws.receive(timeout=5)).type)
        await labkit.shutdown()
        return pings, alive, kinds
    pings, alive, kinds = run(main())
    assert pings == 4 and alive["status"] == "still here"
    assert kinds[-1] in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                         aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR)


async def _close_code(url, send=None):
    async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
        if send is not None:
            await ws.receive_json(timeout=5)
            await ws.send_str(send)
        while (msg := await ws.receive(timeout=5)).type == aiohttp.WSMsgType.TEXT:
            pass
        return ws.close_code, msg.extra


def test_close_codes(run):
    async def main():
        svc = await start_push_service(seed=1, history=3)
        for i in range(10):
            await svc.emit("o", str(i))
        codes = {
            "bad json": await _close_code(svc.url + "/ws", "not json"),
            "bad key": await _close_code(svc.url + "/ws", '{"resume": 3}'),
            "too old": await _close_code(svc.url + "/ws?after=2"),
            "too old msg": await _close_code(svc.url + "/ws", '{"resume_after": 1}'),
            "future": await _close_code(svc.url + "/ws?after=99"),
        }
        async with aiohttp.ClientSession() as s, s.ws_connect(svc.url + "/ws") as ws:
            await ws.receive_json(timeout=5)
            stopper = asyncio.ensure_future(svc.stop())
            await ws.receive(timeout=5)
            codes["stop"] = ws.close_code, ""
            await stopper
        await labkit.shutdown()
        return codes
    codes = run(main())
    assert codes["bad json"][0] == codes["bad key"][0] == 1008
    assert codes["too old"][0] == codes["too old msg"][0] == 4004
    assert "too old" in codes["too old"][1] and "7" in codes["too old"][1]
    assert codes["future"][0] == 4009 and codes["stop"][0] == 1000


def test_bounded_history_resume_too_old_raises_a_clear_error(run):
    async def main():
        svc = await start_push_service(seed=1, history=5)
        for i in range(20):
            await svc.emit("o", str(i))
        feed = ResumingWebSocket(svc.url, last_id=2, backoff=FAST)
        with pytest.raises(ResumeTooOld, match="after id 2.*4004"):
            await asyncio.wait_for(feed.__anext__(), 10)
        await feed.close()
        ok = ResumingWebSocket(svc.url, last_id=15, backoff=FAST)
        tail = [(await asyncio.wait_for(ok.__anext__(), 5))["id"] for _ in range(5)]
        await ok.close()
        await labkit.shutdown()
        return svc, tail
    svc, tail = run(main())
    assert len(svc.history) == 5 and svc.first_id == 16 and tail == [16, 17, 18, 19, 20]


def test_shutdown_ends_every_client_with_going_away(run):
    async def main():
        svc = await start_push_service(seed=1)
        ws_got, sse_got = [], []
        feed = ResumingWebSocket(svc.url, backoff=FAST)
        stream = sse_events(svc.url + "/sse", timeout_s=10)
        tasks = [asyncio.ensure_future(consume(feed, ws_got)),
                 asyncio.ensure_future(consume(stream, sse_got))]
        assert await until(lambda: len(svc.clients) == 2)
        await svc.emit("o", "paid")
        assert await until(lambda: ws_got and sse_got)
        report = await labkit.shutdown()
        done, pending = await asyncio.wait(tasks, timeout=10)
        await stream.aclose()
        return svc, feed, report, pending, [t.exception() for t in done]
    svc, feed, report, pending, errors = run(main())
    assert not pending and errors == [None, None]
    assert feed.close_code == 1001 and not svc.running and not svc.clients
    with pytest.raises(RuntimeError, match="was stopped"):
        svc.url


def test_a_stopped_service_fails_fast_for_the_client_and_for_emit(run):
    async def main():
        svc = await start_push_service(seed=1)
        url = svc.url
        await svc.stop()
        with pytest.raises(RuntimeError, match="was stopped"):
            await svc.emit("o", "paid")
        feed = ResumingWebSocket(url, backoff=FAST)
        with pytest.raises(PushClosed, match="stopped"):
            await asyncio.wait_for(feed.__anext__(), 10)
        await feed.close()
    run(main())


def test_outage_refuses_connections_and_the_client_gives_up_after_max_attempts(run):
    async def main():
        svc = await start_push_service(seed=1)
        svc.faults.outage = True
        async with aiohttp.ClientSession() as s:
            async with s.get(svc.url + "/ws") as resp:
                status = resp.status
        feed = ResumingWebSocket(svc.url, backoff=FAST, max_attempts=3)
        with pytest.raises(PushClosed, match="after 3 failed connects.*503"):
            await asyncio.wait_for(feed.__anext__(), 10)
        await feed.close()
        await labkit.shutdown()
        return status, svc.counts["fault:outage"]
    assert run(main()) == (503, 4)


# ---- SSE ----------------------------------------------------------------------------------

def test_sse_parser_follows_the_event_stream_rules():
    text = ("retry: 2500\n: a comment\n\n"
            "id: 7\nevent: status\ndata: line one\ndata:line two\ndata:  two spaces\n\n"
            "data: no id keeps the last id\r\n\r\n"
            "id: bad\0id\ndata\nfoo: ignored\n\n"
            "event: lonely\nid: 9\n\n"                  # no data: not dispatched, id kept
            "data: after\r\r")
    for size in range(1, 8):                     # chunks split lines and \r\n pairs
        p, events = SSEParser(), []
        for i in range(0, len(text), size):
            events += p.feed(text[i:i + size])
        assert events == [
            SSEEvent("line one\nline two\n two spaces", "status", "7", 2500),
            SSEEvent("no id keeps the last id", "message", "7", 2500),
            SSEEvent("", "message", "7", 2500),
            SSEEvent("after", "message", "9", 2500),
        ], size
        assert p.comments == 1 and p.last_event_id == "9"


def test_sse_stream_resumes_after_last_event_id_and_sends_heartbeat_comments(run):
    async def main():
        svc = await start_push_service(seed=1, heartbeat_s=0.05)
        for i in range(6):
            await svc.emit(f"o{i}", "paid")
        async with sse_events(svc.url + "/sse", last_event_id=3, timeout_s=5) as stream:
            first = [await asyncio.wait_for(stream.__anext__(), 5) for _ in range(3)]
            waiting = asyncio.ensure_future(stream.__anext__())
            assert await until(lambda: stream.parser.comments >= 2)   # idle: heartbeats
            await svc.emit("o9", "late")
            late = await asyncio.wait_for(waiting, 5)
            comments = stream.parser.comments
        async with sse_events(svc.url, last_event_id=late.id) as again:
            await svc.emit("o10", "later")
            later = await asyncio.wait_for(again.__anext__(), 5)
        await labkit.shutdown()
        return first, late, later, comments
    first, late, later, comments = run(main())
    assert [e.id for e in first] == ["4", "5", "6"] and first[0].event == "status"
    assert first[0].json() == {"id": 4, "order": "o3", "status": "paid"}
    assert first[0].retry_ms == 1000
    assert late.json()["id"] == 7 and later.json()["id"] == 8
    assert comments >= 1


def test_sse_refuses_a_last_event_id_older_than_the_history(run):
    async def main():
        svc = await start_push_service(seed=1, history=2)
        for i in range(5):
            await svc.emit("o", str(i))
        async with sse_events(svc.url + "/sse", last_event_id="1") as stream:
            with pytest.raises(ResumeTooOld, match="410"):
                await asyncio.wait_for(stream.__anext__(), 5)
        async with sse_events(svc.url + "/sse", last_event_id="x") as stream:
            with pytest.raises(PushClosed, match="400"):
                await asyncio.wait_for(stream.__anext__(), 5)
        await labkit.shutdown()
    run(main())


# ---- polling --------------------------------------------------------------------------------

def test_polling_endpoint_lists_events_after_an_id(run):
    async def main():
        svc = await start_push_service(seed=1, history=10)
        for i in range(15):
            await svc.emit(f"o{i}", "paid")
        out = {}
        async with aiohttp.ClientSession() as s:
            for q in ("after=10", "after=5&limit=2", "after=15", "after=2", "after=x",
                      "after=5&limit=0", "after=99"):
                async with s.get(f"{svc.url}/events?{q}") as resp:
                    out[q] = resp.status, await resp.json()
        await labkit.shutdown()
        return out
    out = run(main())
    assert [e["id"] for e in out["after=10"][1]] == [11, 12, 13, 14, 15]
    assert [e["id"] for e in out["after=5&limit=2"][1]] == [6, 7]
    assert out["after=15"] == (200, [])
    assert out["after=2"][0] == 410 and "too old" in out["after=2"][1]["error"]
    assert out["after=x"][0] == out["after=5&limit=0"][0] == out["after=99"][0] == 400


# ---- arguments --------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, name", [
    ({"history": 0}, "history"), ({"heartbeat_s": 0}, "heartbeat_s"),
    ({"heartbeat_s": float("nan")}, "heartbeat_s"), ({"seed": "x"}, "seed"),
    ({"max_clients": 0}, "max_clients")])
def test_bad_service_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        PushService(**kwargs)


def test_bad_knobs_and_event_arguments(run):
    async def main():
        svc = await start_push_service(seed=1)
        with pytest.raises(ValueError, match="drop_rate"):
            svc.drop_rate = 1.5
        with pytest.raises(ValueError, match="order_id"):
            await svc.emit(7, "paid")
        with pytest.raises(ValueError, match="non-empty"):
            await svc.emit("o", "")
        with pytest.raises(ValueError, match="code"):
            await svc.stop(code=4000)
        await labkit.shutdown()
    run(main())


@pytest.mark.parametrize("kwargs, name", [
    ({"url": "ftp://x"}, "url"), ({"url": 5}, "url"), ({"last_id": -1}, "last_id"),
    ({"timeout_s": 0}, "timeout_s"), ({"max_attempts": 0}, "max_attempts"),
    ({"backoff": 0.1}, "strategy"), ({"follow": "yes"}, "follow")])
def test_bad_client_arguments(kwargs, name):
    args = {"url": "http://127.0.0.1:1", **kwargs}
    with pytest.raises(ValueError, match=name):
        ResumingWebSocket(args.pop("url"), **args)


def test_bad_sse_arguments():
    for kwargs, name in (({"url": "ws://x/sse"}, "url"), ({"url": "http://h/sse",
                         "timeout_s": -1}, "timeout_s"), ({"url": "http://h/sse",
                         "last_event_id": 1.5}, "last_event_id")):
        with pytest.raises(ValueError, match=name):
            sse_events(**kwargs)
    with pytest.raises(ValueError, match="max_line"):
        SSEParser(max_line=0)
    with pytest.raises(ValueError, match="max_line"):
        SSEParser(max_line=4).feed("data: far too long")


def test_follow_events_is_the_exercise_reference():
    assert follow_events([{"id": 3}, {"id": 2}, {"id": 3}], 1) == ([{"id": 2}, {"id": 3}], 3)


def test_max_clients_bounds_connections(run):
    async def main():
        svc = await start_push_service(seed=1, max_clients=1)
        async with aiohttp.ClientSession() as s, s.ws_connect(svc.url + "/ws") as ws:
            await ws.receive_json(timeout=5)
            async with s.get(svc.url + "/ws") as resp:
                second = resp.status, await resp.json()
        await labkit.shutdown()
        return second
    status, body = run(main())
    assert status == 503 and "max_clients=1" in body["error"]


def test_starting_again_returns_the_running_service_or_says_to_stop_it(run):
    async def main():
        try:
            await _check_restarts()
        finally:
            await labkit.shutdown()
    run(main())


async def _check_restarts():
    private = await PushService(seed=1, history=50).start()            # a lab's own: not shared
    svc = await start_push_service(seed=1, history=50)
    assert svc is not private and svc.port != private.port
    assert await start_push_service(seed=1, history=50) is svc          # a re-run cell
    with pytest.raises(ValueError, match=r"already running .*history=50.*svc.stop\(\)"):
        await start_push_service(seed=1, history=60)
    with pytest.raises(ValueError, match="heartbeat_s=5"):
        await start_push_service(seed=1, history=50, heartbeat_s=1)
    assert [s for s in labkit._core.runtime.running_services()
            if isinstance(s, PushService)] == [private, svc]
    await svc.stop()
    other = await start_push_service(seed=1, history=60)               # stopped: a new one
    assert other is not svc and other.history.maxlen == 60 and other.running


def test_sse_to_a_stopped_service_raises_push_closed(run):
    async def main():
        svc = await start_push_service(seed=1)
        url = svc.url
        await svc.stop()
        async with sse_events(url + "/sse", timeout_s=5) as stream:
            with pytest.raises(PushClosed, match="push service was stopped"):
                await stream.__anext__()
    run(main())


def test_push_service_declares_the_knobs_it_ignores():
    assert PushService.unsupported_knobs == {"slow_body_ms", "reset_rate"}
