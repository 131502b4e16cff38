"""The servers and clients behind chapter 03's protocol comparison
(`labkit.labs.protocol_compare`): the same 100 users over REST/JSON, REST/MessagePack,
gRPC/Protobuf and WebSocket, on real loopback sockets in the running loop.

Two private servers hold the users (started on first use by `servers()`, reused until
`labkit.shutdown()`), both named "protocols" so a call id gets the same injected fault on each:

- a labkit users `Service` (its GETs answer ``Accept: application/msgpack`` in MessagePack,
  as every labkit service does since chapter 04's content negotiation) which serves ``/ws``: a
  WebSocket where each JSON message ``{"rid", "op"}`` is one call answered by one message; the
  service's `FaultModel` applies to each message (decided from its rid, as the HTTP fault layer
  does from X-Request-Id);
- a gRPC Shop server (`labkit.protocols.grpc_service`), called with `ShopClient`.

`_Tap` is a TCP relay that counts connections and bytes each way; `_Clients` holds one client
per protocol and makes the same call on each.
"""
from __future__ import annotations

import asyncio
import json

import aiohttp
import msgpack
from aiohttp import web

from labkit._core import runtime
from labkit.patterns.errors import GrpcError
from labkit.protocols.grpc_service import GrpcService, ShopClient
from labkit.services.http import REQUEST_ID_HEADER, SPECS, Service, ServiceSpec

__all__ = ["MSGPACK", "servers"]

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
    """The users service; it answers ``Accept: application/msgpack`` with MessagePack through
    labkit's built-in content negotiation (labkit.services.negotiation, chapter 04)."""


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
                         for p in ("REST/JSON", "REST/MessagePack", "WebSocket/JSON")}
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
