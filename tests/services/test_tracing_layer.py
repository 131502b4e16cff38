"""Traces across real hops: HTTP client -> service -> service, the broker, gRPC."""
import asyncio
import json

import aiohttp
import pytest
from aiohttp import web

import labkit
from labkit.messaging import Message
from labkit.obs import tracing
from labkit.patterns.errors import GrpcError
from labkit.protocols.grpc_service import ShopClient, start_grpc_service
from labkit.services.http import ServiceSpec
from async_tools import until

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture(autouse=True)
def fresh():
    tracing.enable(True)
    tracing.clear()
    yield
    tracing.clear()


def _tree(spans):
    by_id = {s.span_id: s for s in spans}
    return {s.name + " @" + s.service: (by_id[s.parent_id].name + " @" + by_id[s.parent_id].service
                                        if s.parent_id in by_id else s.parent_id)
            for s in spans}


async def _front_and_back():
    """front GET /page/{n} calls back GET /items/{id} with labkit's AsyncClient."""
    back = await labkit.start_service("inventory")
    client = labkit.AsyncClient(back.url)

    async def page(service, request):
        await asyncio.sleep(0.001 * int(request.match_info["n"]) % 7)
        reply = await client.get(f"/items/{request.match_info['n']}")
        return web.Response(text=json.dumps({"back": reply.status}),
                            content_type="application/json")
    front = await labkit.start_service(ServiceSpec("front", routes=(("GET", "/page/{n}", page),)))
    return front, back


def test_client_service_service_is_one_trace(run):
    async def main():
        try:
            front, back = await _front_and_back()
            async with labkit.AsyncClient(front.url) as c:
                with tracing.span("user", service="notebook"):
                    assert (await c.get("/page/3")).ok
            return tracing.finished_spans()
        finally:
            await labkit.shutdown()
    spans = run(main())
    assert len({s.trace_id for s in spans}) == 1
    assert _tree(spans) == {
        "user @notebook": None,
        "GET /page/3 @notebook": "user @notebook",
        "GET /page/{n} @front": "GET /page/3 @notebook",
        "GET /items/3 @front": "GET /page/{n} @front",
        "GET /items/{id} @inventory": "GET /items/3 @front",
    }
    kinds = {s.name: s.kind for s in spans}
    assert kinds["GET /page/{n}"] == "server" and kinds["GET /items/3"] == "client"
    # inventory has no item 3: a 404 is the server doing its job, the caller's call failed
    status = {s.name: (s.status, s.attributes.get("http.response.status_code")) for s in spans}
    assert status["GET /items/{id}"] == ("ok", 404) and status["GET /items/3"] == ("error", 404)
    for s in spans:                                   # children start and end inside parents
        for p in spans:
            if p.span_id == s.parent_id and p.kind != "producer":
                assert p.start_s <= s.start_s and s.end_s <= p.end_s


def test_50_concurrent_requests_over_real_sockets_keep_their_traces(run):
    async def main():
        try:
            front, _ = await _front_and_back()
            async with labkit.AsyncClient(front.url, timeout_s=60) as c:
                async def one(i):
                    with tracing.span(f"user {i}", service="notebook"):
                        await c.get(f"/page/{i}")
                await asyncio.gather(*(one(i) for i in range(50)))
            return tracing.finished_spans()
        finally:
            await labkit.shutdown()
    spans = run(main(), timeout_s=120)
    assert len(spans) == 250
    traces: dict = {}
    for s in spans:
        traces.setdefault(s.trace_id, []).append(s)
    assert len(traces) == 50
    for members in traces.values():
        [root] = [s for s in members if s.parent_id is None]
        n = root.name.split()[-1]
        assert {s.name for s in members} == {f"user {n}", f"GET /page/{n}", "GET /page/{n}",
                                             f"GET /items/{n}", "GET /items/{id}"}


def test_an_invalid_or_missing_traceparent_starts_a_new_trace(run):
    async def main():
        try:
            svc = await labkit.start_service("users")
            async with aiohttp.ClientSession() as plain:
                for header in ({"traceparent": VALID.upper()}, {"traceparent": "None"}, {},
                               {"traceparent": VALID}):
                    async with plain.get(svc.url + "/health", headers=header) as resp:
                        await resp.read()
            return tracing.finished_spans()
        finally:
            await labkit.shutdown()
    upper, none, missing, valid = run(main())
    for s in (upper, none, missing):
        assert s.parent_id is None and s.trace_id != valid.trace_id
    assert len({upper.trace_id, none.trace_id, missing.trace_id}) == 3
    assert valid.trace_id == VALID[3:35] and valid.parent_id == VALID[36:52]
    assert valid.name == "GET /health" and valid.kind == "server" and valid.service == "users"


def test_fault_layer_answers_are_error_spans(run):
    async def main():
        try:
            svc = await labkit.start_service("payments")
            async with labkit.AsyncClient(svc.url) as c:
                svc.faults.outage = True
                assert (await c.get("/payments")).status == 503
                svc.faults.outage = False
                assert (await c.get("/payments", headers={
                    "X-Deadline-Remaining-Ms": "0"})).status == 504
                assert (await c.get("/payments")).status == 200
                svc.faults.reset_rate = 1.0
                with pytest.raises(aiohttp.ClientError):
                    await c.get("/payments")
            return tracing.finished_spans()
        finally:
            await labkit.shutdown()
    spans = run(main())
    outage, deadline, fine, reset = [s for s in spans if s.kind == "server"]
    assert reset.status == "error" and reset.attributes["error.type"] == "connection reset"
    assert [s.status for s in spans if s.kind == "client"] == ["error", "error", "ok", "error"]
    assert (outage.status, outage.attributes["http.response.status_code"]) == ("error", 503)
    assert (deadline.status, deadline.attributes["http.response.status_code"]) == ("error", 504)
    assert fine.status == "ok" and fine.name == "GET /payments"


def test_sync_client_in_a_thread_continues_the_callers_trace(run):
    async def main():
        try:
            svc = await labkit.start_service("users")
            client = labkit.SyncClient(svc.url)
            with tracing.span("cell", service="notebook"):
                await asyncio.to_thread(client.get, "/health")
            client.close()
            return tracing.finished_spans()
        finally:
            await labkit.shutdown()
    spans = run(main())
    assert _tree(spans) == {"cell @notebook": None, "GET /health @notebook": "cell @notebook",
                            "GET /health @users": "GET /health @notebook"}


def test_the_trace_crosses_the_broker(run):
    async def main():
        try:
            conn = await labkit.broker()
            ch = await conn.channel()
            q = await ch.declare_queue("kitchen")
            seen = []

            async def cook(message):
                seen.append((dict(message.headers), tracing.current_ids()))
                with tracing.span("cook", service="kitchen"):
                    pass
                await message.ack()
            await q.consume(cook)
            with tracing.span("take order", service="waiter"):
                await ch.default_exchange.publish(Message(b"soup", message_id="o-1",
                                                          headers={"table": 4}), "kitchen")
            await until(lambda: len(seen) == 1)
            await ch.default_exchange.publish(Message(b"tea", message_id="o-2"), "kitchen")
            await until(lambda: len(seen) == 2)
            await until(lambda: sum(s.kind == "consumer" for s in tracing.finished_spans()))
            return seen, tracing.finished_spans()
        finally:
            await labkit.shutdown()
    seen, spans = run(main())
    (traced_headers, traced_ids), (plain_headers, plain_ids) = seen
    assert traced_headers["table"] == 4 and "traceparent" in traced_headers
    assert plain_headers == {} and plain_ids is None          # untraced publishes are unchanged
    tree = _tree([s for s in spans if s.name != "cook" or s.parent_id])
    assert tree["publish kitchen @waiter"] == "take order @waiter"
    assert tree["consume kitchen @kitchen"] == "publish kitchen @waiter"
    consumer = next(s for s in spans if s.kind == "consumer")
    assert traced_ids == (consumer.trace_id, consumer.span_id)
    cooks = [s for s in spans if s.name == "cook"]
    assert cooks[0].parent_id == consumer.span_id
    assert cooks[1].parent_id is None and cooks[1].trace_id != consumer.trace_id


def test_the_trace_crosses_grpc_calls(run):
    async def main():
        try:
            inventory = await start_grpc_service("inventory")
            shop = await start_grpc_service("orders", downstream=inventory.target)
            async with ShopClient(inventory) as c:
                [_ async for _ in c.update_stock([("tea", 5)])]
            tracing.clear()
            async with ShopClient(shop) as c:
                with tracing.span("buy", service="notebook"):
                    await c.place_order(1, "tea", 2)
                with pytest.raises(GrpcError):
                    await c.place_order(1, "coffee", 1)       # NOT_FOUND downstream
            # a server span ends just after its answer is sent: wait for all of them (busy CPUs)
            await until(lambda: sum(s.status == "error" for s in tracing.finished_spans()) >= 4)
            return tracing.finished_spans()
        finally:
            await labkit.shutdown()
    spans = run(main())
    buy = next(s for s in spans if s.name == "buy")
    tree = _tree([s for s in spans if s.trace_id == buy.trace_id])
    assert tree == {
        "buy @notebook": None,
        "shop.Shop/PlaceOrder @notebook": "buy @notebook",
        "shop.Shop/PlaceOrder @orders": "shop.Shop/PlaceOrder @notebook",
        "shop.Shop/GetItem @orders": "shop.Shop/PlaceOrder @orders",
        "shop.Shop/GetItem @inventory": "shop.Shop/GetItem @orders",
    }
    bad = {(s.name, s.service): s.attributes["rpc.grpc.status_code"]
           for s in spans if s.status == "error"}
    assert bad == {("shop.Shop/GetItem", "inventory"): "NOT_FOUND",
                   ("shop.Shop/GetItem", "orders"): "NOT_FOUND",
                   ("shop.Shop/PlaceOrder", "orders"): "NOT_FOUND",
                   ("shop.Shop/PlaceOrder", "client"): "NOT_FOUND"}   # no span: "client"


def test_a_deadline_chain_hop_is_the_fronts_child(run):
    """labkit.services.chain calls downstream with a raw aiohttp session: it must inject the
    front's context, or the downstream's server span starts a trace of its own."""
    from labkit.services.chain import start_chain

    async def main():
        try:
            back = await labkit.start_service("inventory")
            chain = await start_chain(back, propagate=True, work_s=0.0)
            async with labkit.AsyncClient(chain.front.url) as c:
                with tracing.span("user", service="notebook"):
                    assert (await c.get("/page")).ok
            await until(lambda: any(s.service == "inventory" for s in tracing.finished_spans()))
            return tracing.finished_spans()
        finally:
            await labkit.shutdown()
    spans = run(main())
    user = next(s for s in spans if s.name == "user")
    tree = _tree([s for s in spans if s.trace_id == user.trace_id])
    assert tree["GET /health @inventory"] == "GET /page @front (propagates deadline)"


def test_each_traced_request_logs_one_line_with_its_ids(run):
    from labkit.obs import logs
    store = logs.LogStore(max_records=100)
    logs.install("labkit.requests", store=store)

    async def main():
        try:
            back = await labkit.start_service("inventory")
            async with labkit.AsyncClient(back.url) as c:
                await c.get("/items/1")
                back.faults.set(outage=True)
                await c.get("/items/1")
            return tracing.finished_spans()
        finally:
            back.faults.reset()
            await labkit.shutdown()
    try:
        spans = run(main())
    finally:
        logging_handlers = __import__("logging").getLogger("labkit.requests").handlers
        logging_handlers[:] = [h for h in logging_handlers if getattr(h, "store", None) is not store]
        __import__("logging").getLogger("labkit.requests").setLevel(0)
    lines = store.search(service="inventory")
    assert [(r["level"], r["message"]) for r in lines] == [
        ("INFO", "GET /items/1 -> 404"), ("WARNING", "GET /items/1 -> 503")]
    servers = [s for s in spans if s.kind == "server"]
    assert [r["span_id"] for r in lines] == [s.span_id for s in servers]
