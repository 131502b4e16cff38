"""Server push (chapter 03): order-status events over WebSocket and server-sent events, and the
same events over REST polling, for the push-vs-poll comparison.

    svc = await start_push_service()          # aiohttp on 127.0.0.1, a port the OS picks
    await svc.emit("order-7", "paid")         # -> {"id": 1, "order": "order-7", "status": "paid"}

Every event gets the next integer id (1, 2, ...) and goes into a bounded history (`history`
events); each connected client has a cursor (the last id sent to it) and is sent everything
after it, so a client that reconnects and names the last id it saw misses nothing.

Endpoints:

- ``GET /ws`` WebSocket. ``?after=ID`` (or a first message ``{"resume_after": ID}``) resumes
  after ID; without it the client gets events from now on. The server first sends
  ``{"hello": true, "last_id": N}``, then one JSON event per message. aiohttp pings every
  `heartbeat_s` and closes a client that does not answer. Close codes: 1000 at `stop()`, 1001
  at `labkit.shutdown()` (going away), 1008 for a bad message, 4004 when the resume id is older
  than the history, 4009 for an id from the future, 4008 for a client too slow to keep up.
- ``GET /sse`` text/event-stream: a ``retry:`` line, then ``id:``/``event: status``/``data:``
  per event and a comment line (``: ping``) every `heartbeat_s` when idle. Resumes after the
  ``Last-Event-ID`` header (or ``?after=ID``); 410 when that id is older than the history.
- ``GET /events?after=ID&limit=N`` REST polling: a JSON list of the events after ID (410 too old).

Faults: `faults` is the usual `FaultModel` (labkit.panel drives it): each new connection or
poll passes it (outage -> 503, error -> its status, latency delays the handshake).
`drop_rate` (0..1) cuts a live connection (no close frame, as a lost network does) before an
event with that probability; `drop_connections()` cuts them all now.
"""
from __future__ import annotations

import asyncio
import collections
import json
import weakref

from aiohttp import web

from labkit._core import runtime, seeding, validate
from labkit.services.faults import FaultModel

__all__ = ["PushService", "start_push_service", "CLOSE_TOO_OLD", "CLOSE_FUTURE", "CLOSE_SLOW"]

CLOSE_TOO_OLD = 4004      # the resume id is older than the history: events were lost
CLOSE_SLOW = 4008         # the client fell behind by more than the history
CLOSE_FUTURE = 4009       # the resume id was never issued
RETRY_MS = 1000           # the SSE reconnection time the server suggests


class _Client:
    """One connected WebSocket or SSE client: its cursor and what wakes its sender."""

    def __init__(self, kind: str, request: web.Request, cursor: int):
        self.kind, self.request, self.cursor = kind, request, cursor
        self.wake = asyncio.Event()
        self.ws: web.WebSocketResponse | None = None
        self.close_code: int | None = None       # set when the server ends the stream

    def cut(self) -> None:
        """Drop the connection without a goodbye (as a lost network would)."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        self.close_code = -1
        self.wake.set()


class PushService:
    """An order-status event stream served over WebSocket, SSE and REST polling (chapter 03).

    `history` bounds the events kept for resuming (and how far a client may lag);
    `heartbeat_s` is the WebSocket ping interval and SSE comment interval; `seed` drives
    the faults and drops. `unsupported_knobs`: fault knobs a connection never feels
    (labkit.panel hides them).
    """

    name = "push"
    unsupported_knobs = frozenset({"slow_body_ms", "reset_rate"})

    def __init__(self, *, seed: int | None = None, history: int = 1000, heartbeat_s: float = 5.0,
                 max_clients: int = 1000):
        self.seed = seeding.course_seed() if seed is None else validate.integer("seed", seed)
        self.history: collections.deque = collections.deque(
            maxlen=validate.integer("history", history, 1, 1_000_000))
        self.heartbeat_s = validate.number("heartbeat_s", heartbeat_s, 0.01, 3600, unit=" s")
        self.max_clients = validate.integer("max_clients", max_clients, 1, 100_000)
        self.faults = FaultModel()
        self.rng = seeding.rng(f"push:{self.seed}", self.seed)
        self._drop_rate = 0.0
        self.last_id = 0
        self.clients: set[_Client] = set()
        self.counts: collections.Counter = collections.Counter()
        self._runner: web.AppRunner | None = None
        self._unregister = None
        self._was_stopped = False
        self.port: int | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    # ---- knobs and state -------------------------------------------------
    @property
    def drop_rate(self) -> float:
        """Chance (0..1) that a live connection is cut before each event it is sent."""
        return self._drop_rate

    @drop_rate.setter
    def drop_rate(self, value: float) -> None:
        self._drop_rate = validate.number("drop_rate", value, 0.0, 1.0)

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (WebSocket at url + "/ws")."""
        if self.port is None:
            state = "was stopped" if self._was_stopped else "is not running"
            raise RuntimeError(f"the push service {state}: run `svc = await "
                               f"labkit.protocols.push.start_push_service()` again")
        return f"http://127.0.0.1:{self.port}"

    @property
    def first_id(self) -> int:
        """The oldest id still in the history (last_id + 1 when it is empty)."""
        return self.history[0]["id"] if self.history else self.last_id + 1

    def summary(self) -> dict:
        return {"name": self.name, "url": self.url if self.running else None,
                "last_id": self.last_id, "history": len(self.history),
                "clients": len(self.clients), "counts": dict(self.counts),
                "drop_rate": self._drop_rate, "faults": self.faults.summary()}

    def __repr__(self):
        where = self.url if self.running else "stopped"
        return f"<PushService {where} | last id {self.last_id} | {len(self.clients)} clients>"

    # ---- events ----------------------------------------------------------------
    async def emit(self, order_id: str, status: str) -> dict:
        """Record an order's new status as the next event and push it to every client."""
        if not self.running:
            self.url                                  # raises the clear "stopped" error
        order = validate.text("order_id", order_id)
        status = validate.text("status", status)
        if not order or not status:
            raise ValueError(f"order_id and status must be non-empty, got {order_id!r}, {status!r}")
        self.last_id += 1
        event = {"id": self.last_id, "order": order, "status": status}
        self.history.append(event)
        self.counts["emitted"] += 1
        for client in self.clients:
            client.wake.set()
        await asyncio.sleep(0)                        # let the senders run
        return event

    def after(self, cursor: int, limit: int | None = None) -> list[dict]:
        """The events after id `cursor` still in the history (the caller checks `first_id`)."""
        k = self.last_id - max(cursor, self.first_id - 1)
        start = len(self.history) - k
        stop = len(self.history) if limit is None else min(len(self.history), start + limit)
        return [self.history[i] for i in range(start, stop)]

    def drop_connections(self) -> int:
        """Cut every live connection now (no close frame); returns how many were cut."""
        clients = list(self.clients)
        for c in clients:
            c.cut()
        self.counts["dropped"] += len(clients)
        return len(clients)

    def _check_cursor(self, raw) -> tuple[int | None, str]:
        """(cursor, "") or (None, why) for a resume id from a client."""
        if isinstance(raw, str):
            raw = int(raw) if raw.strip().lstrip("-").isdigit() else raw
        if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
            return None, f"bad id {raw!r}: give the id of the last event you saw (an int >= 0)"
        if raw > self.last_id:
            return None, f"id {raw} was never issued (the last is {self.last_id})"
        if raw < self.first_id - 1:
            return None, (f"id {raw} is too old: the history starts at {self.first_id}, so "
                          f"events {raw + 1}..{self.first_id - 1} are lost")
        return raw, ""

    async def _fault(self) -> web.Response | None:
        fault = self.faults.decide(self.rng)
        self.counts[f"fault:{fault.action}"] += 1
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault.action == "outage":
            return _error(503, "push service is down (outage)")
        if fault.action == "error":
            return _error(fault.status, f"injected fault {fault.status}")
        if len(self.clients) >= self.max_clients:
            return _error(503, f"too many clients (max_clients={self.max_clients})")
        return None

    def _maybe_drop(self, client: _Client) -> bool:
        if self._drop_rate and self.rng.random() < self._drop_rate:
            client.cut()
            self.counts["dropped"] += 1
            return True
        return False

    # ---- handlers --------------------------------------------------------------
    async def _ws(self, request: web.Request):
        refused = await self._fault()
        if refused is not None:
            return refused
        ws = web.WebSocketResponse(heartbeat=self.heartbeat_s)
        await ws.prepare(request)
        client = _Client("ws", request, self.last_id)
        client.ws = ws
        self.clients.add(client)
        self.counts["ws_connections"] += 1
        sender = None
        try:
            if "after" in request.query:
                cursor, why = self._check_cursor(request.query["after"])
                if cursor is None:
                    await self._refuse(ws, why)
                    return ws
                client.cursor = cursor
            await ws.send_json({"hello": True, "last_id": self.last_id})
            sender = asyncio.ensure_future(self._ws_sender(client))
            async for msg in ws:
                if msg.type != web.WSMsgType.TEXT:
                    continue
                try:
                    body = json.loads(msg.data)
                    raw = body["resume_after"] if isinstance(body, dict) and set(body) == {
                        "resume_after"} else None
                except ValueError:
                    body = raw = None
                if raw is None:
                    await ws.close(code=1008, message=b'send only {"resume_after": <id>}')
                    break
                cursor, why = self._check_cursor(raw)
                if cursor is None:
                    await self._refuse(ws, why)
                    break
                client.cursor = cursor
                client.wake.set()
        finally:
            self.clients.discard(client)
            if sender is not None:
                sender.cancel()
                await asyncio.wait({sender}, timeout=1.0)
        return ws

    async def _refuse(self, ws, why: str) -> None:
        code = CLOSE_FUTURE if "never issued" in why else CLOSE_TOO_OLD if "too old" in why \
            else 1008
        self.counts[f"close:{code}"] += 1
        await ws.close(code=code, message=why.encode()[:120])

    async def _ws_sender(self, client: _Client) -> None:
        ws = client.ws
        try:
            while not ws.closed and client.close_code is None:
                client.wake.clear()
                if client.cursor < self.first_id - 1:      # fell behind the history
                    await ws.close(code=CLOSE_SLOW, message=b"too slow: fell behind the history")
                    return
                for event in self.after(client.cursor):
                    if client.close_code is not None or self._maybe_drop(client):
                        return
                    await ws.send_json(event)
                    client.cursor = event["id"]
                    self.counts["ws_sent"] += 1
                await client.wake.wait()
        except (ConnectionError, RuntimeError):
            pass                                       # the socket went away under us

    async def _sse(self, request: web.Request):
        refused = await self._fault()
        if refused is not None:
            return refused
        raw = request.headers.get("Last-Event-ID", request.query.get("after"))
        cursor = self.last_id
        if raw is not None:
            cursor, why = self._check_cursor(raw)
            if cursor is None:
                return _error(410 if "too old" in why else 400, why)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
        await resp.prepare(request)
        client = _Client("sse", request, cursor)
        self.clients.add(client)
        self.counts["sse_connections"] += 1
        loop = asyncio.get_running_loop()
        try:
            await resp.write(f"retry: {RETRY_MS}\n\n".encode())
            while client.close_code is None:
                client.wake.clear()
                if client.cursor < self.first_id - 1:
                    await resp.write(b"event: error\ndata: too slow: fell behind the history\n\n")
                    break
                for event in self.after(client.cursor):
                    if client.close_code is not None or self._maybe_drop(client):
                        break
                    await resp.write(f"id: {event['id']}\nevent: status\ndata: "
                                     f"{json.dumps(event)}\n\n".encode())
                    client.cursor = event["id"]
                    self.counts["sse_sent"] += 1
                if client.close_code is not None:
                    break
                try:
                    await asyncio.wait_for(client.wake.wait(), self.heartbeat_s)
                except asyncio.TimeoutError:
                    await resp.write(f": ping {loop.time():.3f}\n\n".encode())
            if client.close_code != -1:
                await resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self.clients.discard(client)
        return resp

    async def _events(self, request: web.Request):
        refused = await self._fault()
        if refused is not None:
            return refused
        cursor, why = self._check_cursor(request.query.get("after", "0"))
        if cursor is None:
            return _error(410 if "too old" in why else 400, why)
        raw_limit = request.query.get("limit", "1000")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 10_000:
            return _error(400, f"limit must be a whole number in 1..10000, got {raw_limit!r}")
        self.counts["polls"] += 1
        return web.json_response(self.after(cursor, int(raw_limit)))

    # ---- lifecycle -------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/sse", self._sse)
        app.router.add_get("/events", self._events)
        return app

    async def start(self) -> "PushService":
        if self.running:
            return self
        self.loop = asyncio.get_running_loop()
        runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False,
                               shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self.port, self._was_stopped = runner, runner.addresses[0][1], False
        runtime.register_service(self)
        # labkit.shutdown() runs this before it stops services: clients hear 1001 (going away).
        self._unregister = runtime.on_shutdown(lambda: self.stop(code=1001), loop=self.loop)
        return self

    async def stop(self, *, code: int = 1000) -> None:
        """Close every client (WebSocket with `code`, SSE streams end) and stop listening."""
        code = validate.choice("code", code, (1000, 1001))
        runner, self._runner = self._runner, None
        port, self.port = self.port, None
        if self._unregister is not None:
            self._unregister()
            self._unregister = None
        if runner is None:
            return
        self._was_stopped = True
        reason = b"server stopped" if code == 1000 else b"server going away"
        closing = []
        for client in list(self.clients):
            client.close_code = code
            client.wake.set()
            if client.ws is not None and not client.ws.closed:
                closing.append(client.ws.close(code=code, message=reason))
        if closing:
            await asyncio.wait([asyncio.ensure_future(c) for c in closing], timeout=2.0)
        await runner.cleanup()
        runtime.forget_service(self, port=port)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status)


async def start_push_service(*, seed: int | None = None, history: int = 1000,
                             heartbeat_s: float = 5.0, max_clients: int = 1000) -> PushService:
    """Start the order-status event stream on 127.0.0.1 (a port the OS picks); chapter 03.

    Use top-level ``await`` in a notebook; `labkit.shutdown()` stops it. Called again in the
    same loop (a re-run cell) it returns the running service, so re-runs do not pile up
    servers; with different arguments it raises ValueError: stop the running one first.
    A lab that needs a private service of its own uses ``await PushService(...).start()``.
    """
    svc = PushService(seed=seed, history=history, heartbeat_s=heartbeat_s,
                      max_clients=max_clients)
    loop = asyncio.get_running_loop()
    for running in list(_started):
        if running.loop is loop and running.running:
            if _settings(running) != _settings(svc):
                diff = ", ".join(f"{k}={v!r}" for k, v in _settings(running).items()
                                 if _settings(svc)[k] != v)
                raise ValueError(f"a push service is already running in this loop with {diff}; "
                                 f"`await svc.stop()` first to start one with other arguments")
            return running
    await svc.start()
    _started.add(svc)
    return svc


# Services start_push_service started (a PushService(...).start() of a lab stays private).
_started: "weakref.WeakSet[PushService]" = weakref.WeakSet()


def _settings(svc: PushService) -> dict:
    return {"seed": svc.seed, "history": svc.history.maxlen, "heartbeat_s": svc.heartbeat_s,
            "max_clients": svc.max_clients}
