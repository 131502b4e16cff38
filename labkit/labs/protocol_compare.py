"""The same operation over REST/JSON, REST/MessagePack, gRPC/Protobuf and WebSocket, side by
side on real loopback sockets in the running loop (chapter 03).

Two private servers hold the same 100 users (started on first use, reused until
`labkit.shutdown()`), both named "protocols" so a call id gets the same injected fault on each:

- a labkit users `Service` whose GETs also answer ``Accept: application/msgpack`` (labkit's
  services speak only JSON, so this lab adds the negotiation) and which serves ``/ws``: a
  WebSocket where each JSON message ``{"rid", "op"}`` is one call answered by one message; the
  service's `FaultModel` applies to each message (decided from its rid, as the HTTP fault layer
  does from X-Request-Id);
- a gRPC Shop server (`labkit.protocols.grpc_service`), called with `ShopClient`.

"small" is one user (GET /users/1, GetUser); "large" is the list of all 100 users (GET
/users, ListUsers). Bytes on the wire (`BYTES_COUNTED`) are counted by a TCP relay between
client and server; latency is measured on direct connections. Times are reported in ms.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import json

import aiohttp
import msgpack
from aiohttp import web

from labkit._core import runtime, seeding, validate
from labkit.obs.metrics import percentile
from labkit.patterns.errors import GrpcError
from labkit.protocols.grpc_service import GrpcService, ShopClient
from labkit.protocols.push import start_push_service
from labkit.services.http import REQUEST_ID_HEADER, SPECS, Service, ServiceSpec

__all__ = ["PROTOCOLS", "BYTES_COUNTED", "servers", "compare_latency", "compare_throughput",
           "multiplexing", "push_vs_poll", "fault_chart_data"]

PROTOCOLS = ("REST/JSON", "REST/MessagePack", "gRPC/Protobuf", "WebSocket/JSON")
BYTES_COUNTED = ("TCP payload bytes in both directions (HTTP/1.1 headers and bodies, HTTP/2 "
                 "frames with HPACK headers, WebSocket frames), counted by a relay on a warm "
                 "connection, divided by the calls; TCP/IP headers and connection setup excluded")
NAME = "protocols"
USERS = 100
MSGPACK = "application/msgpack"
MAX_IN_FLIGHT = 256            # WebSocket calls one connection may have open at once
_grpc: list = []               # the private gRPC server, reused while it runs on this loop


# ---- the servers -----------------------------------------------------------------------------
async def _ws_endpoint(service: "_Users", request: web.Request):
    """One WebSocket; each message is a call, answered in its own task (bounded)."""
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    prefix = f"labkit:{service.seed}:service:{service.name}:request:"
    tasks: set = set()

    async def answer(msg: dict) -> None:
        rid = str(msg.get("rid"))
        fault = service.faults.decide_keyed(prefix + rid)
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault.action == "reset":
            if request.transport is not None:
                request.transport.abort()          # as the HTTP fault layer resets
            return
        if fault.action in ("outage", "error"):
            reply = {"rid": rid, "status": fault.status, "error": f"injected fault {fault.status}"}
        elif msg.get("op") == "list":
            reply = {"rid": rid, "status": 200, "data": list(service.items.values())}
        else:
            user = service.items.get(msg.get("id"))
            reply = {"rid": rid, "status": 200 if user else 404, "data": user}
        if not ws.closed:
            await ws.send_str(json.dumps(reply))

    try:
        async for m in ws:
            try:
                msg = json.loads(m.data) if m.type == web.WSMsgType.TEXT else None
            except ValueError:
                msg = None
            if not isinstance(msg, dict) or len(tasks) >= MAX_IN_FLIGHT:
                await ws.send_str(json.dumps({"rid": None, "status": 400 if msg is None else 503}))
                continue
            task = asyncio.ensure_future(answer(msg))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
    return ws


class _Users(Service):
    """The users service, also answering GETs in MessagePack when the client asks for it
    (encoded straight from the records, as the JSON answer is)."""

    async def _get(self, request):
        key, missing = self._find(request)
        if missing or MSGPACK not in request.headers.get("Accept", ""):
            return await super()._get(request)
        return web.Response(body=msgpack.packb(self.items[key]), content_type=MSGPACK)

    async def _list(self, request):
        if MSGPACK not in request.headers.get("Accept", ""):
            return await super()._list(request)
        return web.Response(body=msgpack.packb(list(self.items.values())), content_type=MSGPACK)


_SPEC = ServiceSpec(NAME, SPECS["users"].fields, collection="users",
                    routes=(("GET", "/ws", _ws_endpoint),))


def _user(i: int) -> dict:
    return {"id": i, "name": f"User Number {i:03d}", "email": f"user{i:03d}@example.com"}


async def servers() -> tuple[Service, GrpcService]:
    """The lab's REST and gRPC servers (started on first use, reused until shutdown)."""
    loop = asyncio.get_running_loop()
    rest = runtime.services().get(NAME)
    if rest is None:
        rest = await _Users(_SPEC).start()
        rest.items = {i: _user(i) for i in range(1, USERS + 1)}
    _grpc[:] = [g for g in _grpc if g.running and g.loop is loop]
    if not _grpc:
        g = await GrpcService(NAME, seed=rest.seed).start()
        g.users.update({i: _user(i) for i in range(1, USERS + 1)})
        _grpc.append(g)
    return rest, _grpc[0]


# ---- a relay that counts bytes and connections -----------------------------------------------
class _Tap:
    """A TCP relay on 127.0.0.1 in front of `port`: counts connections and bytes each way."""

    def __init__(self, port: int):
        self.upstream, self.port, self._server, self._writers = port, None, None, set()
        self.connections, self.sent, self.received = 0, 0, 0   # client -> server, server -> client

    async def __aenter__(self):
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        await asyncio.wait_for(self._server.wait_closed(), 5.0)

    async def _relay(self, reader, writer):
        self.connections += 1
        self._writers.add(writer)
        try:
            up_r, up_w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.upstream),
                                                5.0)
        except (OSError, asyncio.TimeoutError):
            return writer.transport.abort()
        self._writers.add(up_w)

        async def pump(r, w, upward: bool):
            try:
                while data := await r.read(65536):
                    self.sent, self.received = (self.sent + len(data) * upward,
                                                self.received + len(data) * (not upward))
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.transport.abort()
        try:
            await asyncio.gather(pump(reader, up_w, True), pump(up_r, writer, False))
        finally:
            self._writers.difference_update({writer, up_w})


# ---- one client per protocol, the same call on each ------------------------------------------
class _WsCalls:
    """Calls over one WebSocket: each message carries a rid; replies may come in any order."""

    def __init__(self, ws):
        self.ws, self.pending = ws, {}
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self):
        try:
            async for m in self.ws:
                if m.type == aiohttp.WSMsgType.TEXT:
                    reply = json.loads(m.data)
                    fut = self.pending.pop(reply.get("rid"), None)
                    if fut is not None and not fut.done():
                        fut.set_result(reply)
        finally:
            for fut in [f for f in self.pending.values() if not f.done()]:
                fut.set_exception(ConnectionError("WebSocket closed"))
            self.pending.clear()

    async def call(self, rid: str, op: str, timeout_s: float) -> bool:
        fut = self.pending[rid] = asyncio.get_running_loop().create_future()
        await self.ws.send_str(json.dumps({"rid": rid, "op": op, "id": 1}))
        reply = await asyncio.wait_for(fut, timeout_s)
        return reply["status"] == 200

    async def close(self):
        await self.ws.close()
        await asyncio.wait({self.reader}, timeout=2.0)


class _Clients:
    """Clients of the four protocols, to `rest_port`/`grpc_port` (a relay's or the servers')."""

    def __init__(self, rest_port: int, grpc_port: int, *, limit: int = 100, timeout_s=10.0):
        self.url, self.timeout_s = f"http://127.0.0.1:{rest_port}", timeout_s
        # A pool of `limit` connections per REST protocol, and one more session for the
        # WebSocket (which holds its connection): no protocol waits for another's connections.
        self.sessions = {p: runtime.session(connector=aiohttp.TCPConnector(limit=limit),
                                            timeout=aiohttp.ClientTimeout(total=timeout_s))
                         for p in (*PROTOCOLS[:2], PROTOCOLS[3])}
        self.grpc = ShopClient(f"127.0.0.1:{grpc_port}", timeout_s=timeout_s)
        self.ws: _WsCalls | None = None

    async def open(self) -> "_Clients":
        self.ws = _WsCalls(await self.sessions["WebSocket/JSON"].ws_connect(self.url + "/ws"))
        return self

    async def close(self) -> None:
        for closer in ([self.ws.close] if self.ws else []) + [self.grpc.close] + [
                s.close for s in self.sessions.values()]:
            await closer()

    async def call(self, protocol: str, op: str, rid: str) -> bool:
        """One call of `op` ("get": user 1, "list": all users); True if it succeeded."""
        if protocol == "gRPC/Protobuf":
            md = {"x-request-id": rid}
            try:
                await (self.grpc.get_user(1, metadata=md) if op == "get"
                       else self.grpc.list_users(metadata=md))
                return True
            except GrpcError:                   # the call failed, as a REST 5xx does
                return False
        if protocol == "WebSocket/JSON":
            return await self.ws.call(rid, op, self.timeout_s)
        path = "/users/1" if op == "get" else "/users"
        mp = protocol == "REST/MessagePack"
        headers = {REQUEST_ID_HEADER: rid, "Accept": MSGPACK if mp else "application/json"}
        async with self.sessions[protocol].get(self.url + path, headers=headers) as resp:
            body = await resp.read()
            if resp.status == 200:
                msgpack.unpackb(body) if mp else json.loads(body)
            return resp.status == 200


@contextlib.contextmanager
def _same_faults(services, **knobs):
    """Set the same fault knobs on every server; restore what each had on exit."""
    saved = [svc.faults.summary() for svc in services]
    try:
        for svc in services:
            svc.faults.set(**knobs)
        yield
    finally:
        for svc, before in zip(services, saved):
            svc.faults.set(**before)


def _ms_stats(latencies_s: list) -> dict:
    ms = [x * 1000 for x in latencies_s]
    return {"p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99)}


async def _timed(clients, protocol, op, rid) -> tuple[float, bool]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    ok = await clients.call(protocol, op, rid)
    return loop.time() - start, ok


# ---- 1. latency and bytes --------------------------------------------------------------------
async def compare_latency(*, calls: int = 200, payload: str = "small", seed: int = 0,
                          byte_calls: int = 20) -> dict:
    """p50/p99 latency (ms) of `calls` sequential calls per protocol, interleaved in rounds
    (order shuffled per round from `seed`), and bytes on the wire per call (`BYTES_COUNTED`,
    over `byte_calls` more calls through a relay). Returns {protocol: {...}}; chapter 03."""
    calls = validate.integer("calls", calls, 1, 10_000)
    byte_calls = validate.integer("byte_calls", byte_calls, 1, 1000)
    seed = validate.integer("seed", seed)
    op = {"small": "get", "large": "list"}[validate.choice("payload", payload, ("small", "large"))]
    rest, grpc_svc = await servers()
    rng, order = seeding.rng("protocol_compare", seed), list(PROTOCOLS)
    out = {p: {"payload": payload, "calls": calls, "ok": 0} for p in PROTOCOLS}
    lat: dict = {p: [] for p in PROTOCOLS}
    clients = await _Clients(rest.port, grpc_svc.port).open()
    try:
        for p in PROTOCOLS:                                      # warm every connection
            await clients.call(p, op, f"lat-{seed}-warm")
        for i in range(calls):
            rng.shuffle(order)
            for p in order:
                took, ok = await _timed(clients, p, op, f"lat-{seed}-{i}")
                lat[p].append(took)
                out[p]["ok"] += ok
    finally:
        await clients.close()
    for p in PROTOCOLS:
        out[p].update(**_ms_stats(lat[p]), **await _bytes_per_call(rest, grpc_svc, p, op,
                                                                   byte_calls, seed))
    return out


async def _bytes_per_call(rest, grpc_svc, protocol, op, n, seed) -> dict:
    grpc = protocol == "gRPC/Protobuf"
    async with _Tap(grpc_svc.port if grpc else rest.port) as tap:
        clients = await _Clients(rest.port if grpc else tap.port,
                                 tap.port if grpc else grpc_svc.port).open()
        try:
            await clients.call(protocol, op, f"bytes-{seed}-warm")
            sent, received = tap.sent, tap.received
            for i in range(n):
                await clients.call(protocol, op, f"bytes-{seed}-{i}")
            sent, received = tap.sent - sent, tap.received - received
        finally:
            await clients.close()
    return {"request_bytes": sent / n, "response_bytes": received / n,
            "bytes_per_call": (sent + received) / n}


# ---- 2. throughput ---------------------------------------------------------------------------
async def compare_throughput(*, concurrency=(1, 50), seconds: float = 1.0) -> dict:
    """Requests per second per protocol with each number of concurrent callers, each caller
    calling in a loop for `seconds`. Returns {protocol: {concurrency: requests_per_s}}."""
    if isinstance(concurrency, int):
        concurrency = (concurrency,)
    levels = tuple(validate.integer("concurrency", c, 1, 500) for c in concurrency)
    if not levels:
        raise ValueError("concurrency must name at least one number of callers, got ()")
    seconds = validate.number("seconds", seconds, 0, 30, lo_open=True, unit=" s")
    rest, grpc_svc = await servers()
    loop = asyncio.get_running_loop()
    out = {p: {} for p in PROTOCOLS}
    clients = await _Clients(rest.port, grpc_svc.port, limit=max(levels)).open()
    try:
        for c in levels:
            for p in PROTOCOLS:
                ids, start = itertools.count(), loop.time()

                async def caller():
                    while loop.time() < start + seconds:
                        await clients.call(p, "get", f"tput-{c}-{next(ids)}")
                await asyncio.gather(*(caller() for _ in range(c)))
                out[p][c] = next(ids) / (loop.time() - start)   # calls done
    finally:
        await clients.close()
    return out


# ---- 3. one HTTP/2 connection vs HTTP/1.1 connections ----------------------------------------
async def multiplexing(*, calls: int = 100, latency_ms: float = 10.0) -> dict:
    """`calls` concurrent calls, each held `latency_ms` by the server: gRPC over one HTTP/2
    channel, and aiohttp GETs with a pool of 1 connection and of `calls` connections. Elapsed
    time (ms) and connections the servers accepted (counted by a relay in front of each).
    HTTP/1.1 answers one request at a time per connection, so one connection needs at least
    calls x latency_ms (`serial_floor_ms`); HTTP/2 interleaves them all on one."""
    calls = validate.integer("calls", calls, 1, 1000)
    latency_ms = validate.number("latency_ms", latency_ms, 1, 1000, unit=" ms")
    rest, grpc_svc = await servers()
    loop = asyncio.get_running_loop()
    out = {"calls": calls, "latency_ms": latency_ms, "serial_floor_ms": calls * latency_ms}
    cases = (("gRPC, one HTTP/2 channel", "gRPC/Protobuf", 1),
             ("HTTP/1.1, pool of 1", "REST/JSON", 1),
             (f"HTTP/1.1, pool of {calls}", "REST/JSON", calls))
    with _same_faults((rest, grpc_svc), latency_ms=latency_ms, latency_rate=1.0):
        for label, protocol, limit in cases:
            grpc = protocol == "gRPC/Protobuf"
            async with _Tap(grpc_svc.port if grpc else rest.port) as tap:
                clients = _Clients(rest.port if grpc else tap.port,
                                   tap.port if grpc else grpc_svc.port, limit=limit,
                                   timeout_s=30 + calls * latency_ms / 1000)
                try:
                    start = loop.time()
                    oks = await asyncio.gather(*(clients.call(protocol, "get", f"mux-{limit}-{i}")
                                                 for i in range(calls)))
                    elapsed = loop.time() - start
                finally:
                    await clients.close()
                out[label] = {"elapsed_ms": elapsed * 1000, "connections": tap.connections,
                              "ok": sum(oks)}
    return out


# ---- 4. push vs poll -------------------------------------------------------------------------
async def push_vs_poll(*, updates: int = 10_000, poll_every_ms: float = 100.0,
                       emit_s: float = 1.0, batches: int = 100) -> dict:
    """`updates` small events emitted in `batches` equal batches over `emit_s`, received both
    pushed over one WebSocket and polled over REST (GET /events?after=) every `poll_every_ms`.
    Delivery delay = receipt - emission (ms), requests made, bytes moved (relay-counted)."""
    updates = validate.integer("updates", updates, 1, 100_000)
    poll_s = validate.number("poll_every_ms", poll_every_ms, 1, 10_000, unit=" ms") / 1000
    emit_s = validate.number("emit_s", emit_s, 0, 30, unit=" s")
    batches = validate.integer("batches", batches, 1, updates)
    loop = asyncio.get_running_loop()
    svc = await start_push_service(history=max(updates, 1000), heartbeat_s=30.0)
    emitted, got, polls = {}, {"push": {}, "poll": {}}, [0]    # id -> loop time; polls made
    done, limit_s = asyncio.Event(), emit_s + 30.0
    try:
        async with _Tap(svc.port) as push_tap, _Tap(svc.port) as poll_tap:
            session = runtime.session(timeout=aiohttp.ClientTimeout(total=limit_s))
            try:
                ws = await session.ws_connect(f"http://127.0.0.1:{push_tap.port}/ws")

                async def pushed():
                    async for m in ws:
                        ev = json.loads(m.data) if m.type == aiohttp.WSMsgType.TEXT else {}
                        if "id" in ev:
                            got["push"].setdefault(ev["id"], loop.time())
                        if len(got["push"]) >= updates:
                            return

                async def polled():
                    after, url = 0, f"http://127.0.0.1:{poll_tap.port}/events"
                    while True:
                        finished = done.is_set()
                        async with session.get(url, params={"after": after, "limit": 10_000}) as r:
                            events, now, polls[0] = await r.json(), loop.time(), polls[0] + 1
                        for ev in events:
                            got["poll"].setdefault(ev["id"], now)
                            after = max(after, ev["id"])
                        if finished and after >= updates:
                            return
                        await asyncio.sleep(poll_s)

                async def emit():
                    for b in range(batches):
                        for _ in range(min(-(-updates // batches), updates - len(emitted))):
                            ev = await svc.emit("order-1", "paid")
                            emitted[ev["id"]] = loop.time()
                        await asyncio.sleep(emit_s / batches)
                    done.set()
                await asyncio.wait_for(asyncio.gather(pushed(), polled(), emit()), limit_s)
                await ws.close()
            finally:
                await session.close()
    finally:
        await svc.stop()
    out = {"updates": updates, "poll_every_ms": poll_s * 1000}
    for way, tap in (("push", push_tap), ("poll", poll_tap)):
        delays = [(got[way][i] - emitted[i]) * 1000 for i in emitted if i in got[way]]
        out[way] = {"delivered": len(got[way]), "in_order": list(got[way]) == sorted(got[way]),
                    "delay_p50_ms": percentile(delays, 50), "delay_p99_ms": percentile(delays, 99),
                    "delay_max_ms": max(delays, default=None),
                    "requests": 1 if way == "push" else polls[0],
                    "connections": tap.connections, "bytes": tap.sent + tap.received}
    return out


# ---- 5. the same fault on each protocol ------------------------------------------------------
async def fault_chart_data(*, latency_ms: float = 50.0, error_rate: float = 0.2,
                           calls: int = 100, concurrency: int = 10, seed: int = 0) -> dict:
    """Set the same latency and error rate on every protocol's server (call ids are shared,
    so the same calls fail on each), make `calls` calls per protocol (`concurrency` at a time,
    all protocols at once), restore the knobs after. Returns {protocol: {p50_ms, p99_ms,
    error_share, errors}}, plus "injected_errors": how many of the ids the model fails."""
    latency_ms = validate.number("latency_ms", latency_ms, 0, 5000, unit=" ms")
    error_rate = validate.number("error_rate", error_rate, 0, 1)
    calls = validate.integer("calls", calls, 1, 10_000)
    concurrency = validate.integer("concurrency", concurrency, 1, 200)
    seed = validate.integer("seed", seed)
    rest, grpc_svc = await servers()
    ids = [f"fault-{seed}-{i}" for i in range(calls)]
    clients = await _Clients(rest.port, grpc_svc.port, limit=concurrency,
                             timeout_s=10 + 2 * latency_ms / 1000).open()   # before the faults
    out: dict = {}
    try:
        faults = _same_faults((rest, grpc_svc), latency_dist="fixed", latency_ms=latency_ms,
                              latency_rate=1.0, error_rate=error_rate, outage=False, reset_rate=0)

        async def run(p):
            lat, bad, queue = [], 0, iter(ids)

            async def caller():
                nonlocal bad
                for rid in queue:
                    took, ok = await _timed(clients, p, "get", rid)
                    lat.append(took)
                    bad += not ok
            await asyncio.gather(*(caller() for _ in range(concurrency)))
            out[p] = {**_ms_stats(lat), "errors": bad, "error_share": bad / calls, "calls": calls}
        with faults:
            await asyncio.gather(*(run(p) for p in PROTOCOLS))
            injected = sum(grpc_svc.faults.decide_keyed(grpc_svc.key_prefix + r).action == "error"
                           for r in ids)
    finally:
        await clients.close()
    out = {p: out[p] for p in PROTOCOLS}
    out.update(latency_ms=latency_ms, error_rate=error_rate, injected_errors=injected)
    return out
