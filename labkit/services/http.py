"""Simulated services: real aiohttp servers on 127.0.0.1 with live fault knobs.

Defined in chapter 1 (notebooks/01_sync.ipynb). A service is one JSON collection with the
usual REST routes, declared in one line as a `ServiceSpec`:

    GET    /{collection}          200  list
    POST   /{collection}          201  create (Location header); 400 bad body; 409 duplicate
    GET    /{collection}/{id}     200  or 404
    PUT    /{collection}/{id}     200  replace; 400; 404; 409
    DELETE /{collection}/{id}     204  or 404
    GET    /health                200

A POST with an ``Idempotency-Key`` header is done once: repeating it with the same key
replays the first answer instead of creating a second resource (a different body with the
same key gets 422). A request carrying ``X-Deadline-Remaining-Ms`` is abandoned with 504 once
that much time has passed, instead of doing work nobody waits for.

A spec can add routes of its own, e.g. an endpoint that calls another service:
``ServiceSpec("checkout", routes=(("POST", "/checkout", handler),))`` where
``async def handler(service, request) -> web.Response``; they sit behind the same fault layer.

Start one inside the notebook's running loop: ``users = await start_service("users")``.
Starting a name that is already running returns the running service.
"""
from __future__ import annotations

import asyncio
import collections
import functools
import json
import socket
import struct
from dataclasses import dataclass, field

from aiohttp import web

from labkit._core import runtime

from labkit._core import seeding
from labkit.services.faults import FaultModel

DEADLINE_HEADER = "X-Deadline-Remaining-Ms"


@dataclass(frozen=True)
class ServiceSpec:
    """A service declaration: its name, collection, required fields and unique fields."""
    name: str
    fields: dict = field(default_factory=dict)      # field name -> type (str, int, float, bool)
    collection: str = ""                             # URL segment; defaults to the name
    unique: tuple = ()
    routes: tuple = ()          # extra (method, path, handler); handler(service, request)

    @property
    def path(self) -> str:
        return "/" + (self.collection or self.name)


SPECS: dict[str, ServiceSpec] = {s.name: s for s in (
    ServiceSpec("users", {"name": str, "email": str}, unique=("email",)),
    ServiceSpec("inventory", {"sku": str, "stock": int}, collection="items", unique=("sku",)),
    ServiceSpec("payments", {"order_id": str, "amount_cents": int}, unique=("order_id",)),
    ServiceSpec("orders", {"user_id": int, "sku": str, "quantity": int}),
    ServiceSpec("notifications", {"to": str, "message": str}),
)}


@dataclass(frozen=True)
class Served:
    """One request as the service saw it (server-side log)."""
    t: float            # loop time when it arrived, seconds
    method: str
    path: str
    status: int         # 0 for a reset connection
    fault: str          # "pass", "error", "outage", "reset", "deadline"
    duration_s: float


def _json(status: int, body) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def _error(status: int, message: str, headers=None) -> web.Response:
    resp = _json(status, {"error": message, "status": status})
    if headers:
        resp.headers.update(headers)
    return resp


class Service:
    """A running (or stopped) simulated service; see the module docstring."""

    def __init__(self, spec: ServiceSpec, *, seed: int | None = None, log_size: int = 10_000):
        self.spec = spec
        self.name = spec.name
        self.faults = FaultModel()
        self.rng = seeding.rng(f"service:{spec.name}", seed)
        self.log: collections.deque[Served] = collections.deque(maxlen=log_size)
        self.items: dict[int, dict] = {}
        self._next_id = 1
        self._idempotent: dict[str, tuple[str, int, dict, dict]] = {}
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    # ---- lifecycle -------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``."""
        if self.port is None:
            raise RuntimeError(f"service {self.name!r} is not running: await start_service({self.name!r})")
        return f"http://127.0.0.1:{self.port}"

    def make_app(self, *, faults: bool = True) -> web.Application:
        """The aiohttp app; `faults=False` leaves out the fault layer (used by benchmarks)."""
        app = web.Application(middlewares=[self._fault_layer] if faults else [])
        p = self.spec.path
        app.router.add_get("/health", self._health)
        app.router.add_get(p, self._list)
        app.router.add_post(p, self._create)
        app.router.add_get(p + "/{id}", self._get)
        app.router.add_put(p + "/{id}", self._put)
        app.router.add_delete(p + "/{id}", self._delete)
        for method, path, handler in self.spec.routes:
            app.router.add_route(method, path, functools.partial(handler, self))
        return app

    async def start(self) -> "Service":
        if self.running:
            return self
        self.loop = asyncio.get_running_loop()
        # handler_cancellation: a request whose client hung up stops waiting (as a real
        # server's worker would be freed), so stop() never waits on a 60 s injected delay.
        runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False,
                               handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]
        runtime.register_service(self)
        return self

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self.port = None
        runtime.forget_service(self)

    def summary(self) -> dict:
        """Counts of requests by outcome, plus the fault knobs."""
        outcomes = collections.Counter(s.fault for s in self.log)
        statuses = collections.Counter(str(s.status) for s in self.log)
        return {"name": self.name, "url": self.url if self.running else None,
                "requests": len(self.log), "outcomes": dict(outcomes),
                "statuses": dict(statuses), "items": len(self.items),
                "faults": self.faults.summary()}

    def __repr__(self):
        where = self.url if self.running else "stopped"
        return f"<Service {self.name} {where} | {self.faults.describe()}>"

    # ---- fault layer -------------------------------------------------------
    @web.middleware
    async def _fault_layer(self, request: web.Request, handler):
        loop_time = asyncio.get_running_loop().time
        start = loop_time()
        fault = self.faults.decide(self.rng)
        outcome, status = fault.action, 0
        try:
            if fault.action == "outage":
                status = 503
                return _error(503, f"{self.name} is down (outage)")
            budget = _deadline_budget(request)
            if fault.delay_s:
                if budget is not None and fault.delay_s > budget:
                    await asyncio.sleep(max(budget, 0.0))
                    outcome, status = "deadline", 504
                    return _error(504, "deadline exceeded: work abandoned")
                await asyncio.sleep(fault.delay_s)
            if fault.action == "reset":
                _reset(request)
                return web.Response()
            if fault.action == "error":
                status = fault.status
                headers = ({"Retry-After": f"{fault.retry_after_s:g}"}
                           if fault.retry_after_s is not None else None)
                return _error(fault.status, f"injected fault {fault.status}", headers)
            response = await handler(request)
            status = response.status
            if fault.slow_body_s and response.body:
                return await _trickle(request, response, fault.slow_body_s)
            return response
        finally:
            self.log.append(Served(start, request.method, request.path, status, outcome,
                                   loop_time() - start))

    # ---- REST handlers -------------------------------------------------------
    async def _health(self, request):
        return _json(200, {"status": "ok", "service": self.name})

    async def _list(self, request):
        return _json(200, list(self.items.values()))

    def _find(self, request) -> tuple[int | None, web.Response | None]:
        raw = request.match_info["id"]
        if not raw.isdigit() or int(raw) not in self.items:
            return None, _error(404, f"{self.spec.path.strip('/')} {raw} not found")
        return int(raw), None

    async def _get(self, request):
        key, missing = self._find(request)
        return missing or _json(200, self.items[key])

    async def _create(self, request):
        text = await request.text()
        idem = request.headers.get("Idempotency-Key")
        if idem is not None and idem in self._idempotent:
            body_seen, status, body, headers = self._idempotent[idem]
            if body_seen != text:
                return _error(422, "Idempotency-Key reused with a different body")
            resp = _json(status, body)
            resp.headers.update(headers)
            resp.headers["Idempotent-Replayed"] = "true"
            return resp
        record, problem = self._validate(text)
        if problem:
            return problem
        record = {"id": self._next_id, **record}
        self._next_id += 1
        self.items[record["id"]] = record
        headers = {"Location": f"{self.spec.path}/{record['id']}"}
        if idem is not None:
            self._idempotent[idem] = (text, 201, record, headers)
        resp = _json(201, record)
        resp.headers.update(headers)
        return resp

    async def _put(self, request):
        key, missing = self._find(request)
        if missing:
            return missing
        record, problem = self._validate(await request.text(), exclude=key)
        if problem:
            return problem
        self.items[key] = {"id": key, **record}
        return _json(200, self.items[key])

    async def _delete(self, request):
        key, missing = self._find(request)
        if missing:
            return missing
        del self.items[key]
        return web.Response(status=204)

    def _validate(self, text: str, exclude: int | None = None):
        try:
            body = json.loads(text)
        except ValueError:
            return None, _error(400, "body is not valid JSON")
        if not isinstance(body, dict):
            return None, _error(400, "body must be a JSON object")
        fields = self.spec.fields
        unknown = sorted(set(body) - set(fields))
        if unknown:
            return None, _error(400, f"unknown fields: {', '.join(unknown)}")
        missing = [f for f in fields if f not in body]
        if missing:
            return None, _error(400, f"missing fields: {', '.join(missing)}")
        for name, typ in fields.items():
            value = body[name]
            if not isinstance(value, typ) or (typ is not bool and isinstance(value, bool)):
                return None, _error(400, f"field {name!r} must be {typ.__name__}")
        for name in self.spec.unique:
            for key, other in self.items.items():
                if key != exclude and other[name] == body[name]:
                    return None, _error(409, f"{name} {body[name]!r} already exists")
        return {f: body[f] for f in fields}, None


def _deadline_budget(request) -> float | None:
    raw = request.headers.get(DEADLINE_HEADER)
    if raw is None:
        return None
    try:
        return float(raw) / 1000.0
    except ValueError:
        return None


def _reset(request) -> None:
    """Toxiproxy's reset_peer: close the connection with a TCP RST, send nothing."""
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if request.transport is not None:
        request.transport.abort()


async def _trickle(request, response: web.Response, over_s: float) -> web.StreamResponse:
    """Toxiproxy's bandwidth toxic: headers at once, then the body in ten slices."""
    body = response.body
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    stream.content_length = len(body)
    await stream.prepare(request)
    slices = 10
    step = max(1, -(-len(body) // slices))
    try:
        for i in range(0, len(body), step):
            await asyncio.sleep(over_s / slices)
            await stream.write(body[i:i + step])
        await stream.write_eof()
    except ConnectionError:
        pass                                   # the client gave up (its timeout fired)
    return stream


async def start_service(name: str | ServiceSpec = "users", *, seed: int | None = None) -> Service:
    """Start a service by name (see `SPECS`) or from a `ServiceSpec`, or return it if running.

    Binds 127.0.0.1 on a port the OS picks, inside the running event loop: use top-level
    ``await`` in a notebook.
    """
    spec = SPECS.get(name) if isinstance(name, str) else name
    if spec is None:
        raise ValueError(f"unknown service {name!r}; known: {', '.join(SPECS)} (or pass a ServiceSpec)")
    running = runtime.services().get(spec.name)
    if running is not None:
        return running
    return await Service(spec, seed=seed).start()


class Blackhole:
    """A port that accepts no connections: connecting to it hangs until a connect timeout.

    Its listen backlog is full, so the kernel drops new handshakes, just as a host that
    vanished would. Use it to see a *connect* timeout fire (chapter 1)::

        with Blackhole() as hole:
            ...  # session.get(hole.url, timeout=aiohttp.ClientTimeout(connect=0.5))
    """

    def __init__(self):
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._fillers = []
        for _ in range(3):                    # fill the backlog (Linux keeps backlog + 1)
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.port))
            self._fillers.append(s)

    def close(self) -> None:
        for s in self._fillers + [self._listener]:
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
