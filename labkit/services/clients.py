"""HTTP clients done right: the corrected versions of the source tutorial's clients.

Defined in chapter 1. Times are seconds.

- `SyncClient` (requests): one `Session` for connection reuse, a base URL, default headers,
  and a (connect, read) timeout on *every* call. It refuses to run on the thread whose event
  loop serves labkit's services: that call could never be answered (the loop that must answer
  is the one it blocks). Run it with ``await asyncio.to_thread(client.get, ...)``.
- `AsyncClient` (aiohttp): one `ClientSession` reused for every call, a `ClientTimeout`
  with connect and total limits, and the body read *inside* ``async with`` so the caller gets
  data, not a response object whose connection is already gone. Its session never re-sends a
  request behind your back (plain aiohttp does: see `count_hidden_resends`).

Both send a fresh ``X-Request-Id`` on every call, ``{client_id}-{n}`` (n counts the client's
calls; the client id is drawn from the course seed's "client" stream, so two clients never
share ids and re-running a notebook from `labkit.set_seed` gives the same ids), so a labkit
service decides each call's fault from the seed and that id, whatever the order calls arrive in. An ``X-Request-Id`` you
pass yourself wins. Each call is a client span (chapter 07) whose `traceparent` header makes
the service's span its child (labkit.obs.tracing). After ``labkit.shutdown()``, calling a stopped service raises
`ServicesShutDown` ("the services were shut down; run the start cell again").
"""
from __future__ import annotations

import asyncio
import itertools
import urllib.parse
from dataclasses import dataclass

import aiohttp
import requests

from labkit._core import runtime, seeding, validate
from labkit.obs import tracing
from labkit.services.http import REQUEST_ID_HEADER, Service, ServicesShutDown

__all__ = ["AsyncClient", "Reply", "ServicesShutDown", "SyncClient", "count_hidden_resends"]


@dataclass(frozen=True)
class Reply:
    """What a call returns: status, headers, the raw `body` bytes, and `data`: the body decoded
    when it is JSON or MessagePack (chapter 04's content negotiation), else None."""
    status: int
    headers: dict
    data: object
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _decoded(content_type: str, body: bytes):
    """The body as Python data for a JSON or MessagePack reply; None for other types, an empty
    body, or bytes that do not decode (the raw bytes stay in `Reply.body`)."""
    from labkit.services import negotiation
    media = (content_type or "").split(";")[0].strip().lower()
    if not body or media not in (negotiation.JSON, negotiation.MSGPACK, negotiation.X_MSGPACK):
        return None
    try:
        return negotiation.decode(media, body)
    except ValueError:                        # DecodeError: a body that lies about its type
        return None


def _span_name(method: str, path: str) -> str:
    """A client span's name: "GET /items/1" (no query string)."""
    return f"{method} /{path.lstrip('/').split('?')[0]}"


def _check_base_url(base_url) -> tuple[str, int | None]:
    """(base_url without a trailing slash, its port) or ValueError naming base_url."""
    problem = None
    try:
        parts = urllib.parse.urlsplit(base_url) if isinstance(base_url, str) else None
        port = parts.port if parts else None
    except ValueError as err:                 # port out of range or not a number
        parts, port, problem = None, None, str(err)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url must be an http:// URL such as service.url "
                         f"(http://127.0.0.1:41234), got {base_url!r}"
                         + (f" ({problem})" if problem else ""))
    return base_url.rstrip("/"), port


class _Client:
    """What both clients share: checked arguments, default headers, request ids."""

    def __init__(self, base_url: str, *, timeout_s: float, connect_timeout_s: float,
                 headers: dict | None):
        self.base_url, self._port = _check_base_url(base_url)
        self.timeout_s = validate.number("timeout_s", timeout_s, 0, 300, lo_open=True,
                                         unit=" seconds")
        self.connect_timeout_s = validate.number("connect_timeout_s", connect_timeout_s, 0, 300,
                                                 lo_open=True, unit=" seconds")
        if headers is not None and not isinstance(headers, dict):
            raise ValueError(f"headers must be a dict of header name -> value, got {headers!r}")
        self.headers = {"Accept": "application/json", "User-Agent": "labkit-course/1.0",
                        **(headers or {})}
        self.client_id = f"labkit-{seeding.stream('client').getrandbits(48):012x}"
        self._calls = itertools.count(1)

    def _headers(self, kwargs: dict) -> dict:
        """This call's headers: a fresh request id unless the caller passed one."""
        extra = kwargs.pop("headers", None) or {}
        if any(k.lower() == REQUEST_ID_HEADER.lower() for k in extra):
            return dict(extra)
        return {REQUEST_ID_HEADER: f"{self.client_id}-{next(self._calls)}", **extra}

    def _stopped(self) -> bool:
        return runtime.was_stopped(self._port)

    def _call_timeout_s(self, kwargs: dict) -> float | None:
        """This call's `timeout_s=` (seconds), popped from `kwargs` and checked; None if absent.

        The connect limit of the call is the smaller of it and `connect_timeout_s`."""
        if "timeout_s" not in kwargs:
            return None
        if "timeout" in kwargs:
            raise ValueError("give either timeout_s (seconds) or timeout, not both")
        return validate.number("timeout_s", kwargs.pop("timeout_s"), 0, 300, lo_open=True,
                               unit=" seconds")


def _loop_thread_would_block() -> bool:
    """True when this thread runs the loop that serves labkit's services."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    return any(s.loop is loop for s in runtime.running_services())


class SyncClient(_Client):
    """A blocking JSON client on `requests.Session`; see the module docstring.

    Every call takes ``timeout_s=`` (seconds; requests' read timeout) for that call alone."""

    def __init__(self, base_url: str, *, timeout_s: float = 5.0, connect_timeout_s: float = 1.0,
                 headers: dict | None = None):
        super().__init__(base_url, timeout_s=timeout_s, connect_timeout_s=connect_timeout_s,
                         headers=headers)
        self.timeout = (self.connect_timeout_s, self.timeout_s)   # requests: (connect, read)
        self.session = requests.Session()
        self.session.headers.update(self.headers)
        self._registered = False

    def request(self, method: str, path: str, **kwargs) -> Reply:
        if _loop_thread_would_block():
            raise RuntimeError(
                "SyncClient called on the thread that runs the notebook's event loop: the "
                "service on that loop could never answer (the call would hang the kernel). "
                "Run it in a thread: await asyncio.to_thread(client.get, path)")
        if not self._registered:                 # labkit.shutdown() closes the session
            self._registered = True
            runtime.on_shutdown(self.close)
        call_s = self._call_timeout_s(kwargs)
        if call_s is not None:
            kwargs["timeout"] = (min(self.connect_timeout_s, call_s), call_s)
        kwargs.setdefault("timeout", self.timeout)
        url = f"{self.base_url}/{path.lstrip('/')}"
        headers = self._headers(kwargs)
        with tracing.outgoing(_span_name(method, path), headers) as span:   # chapter 07
            try:
                resp = self.session.request(method, url, headers=headers, **kwargs)
            except requests.exceptions.ConnectionError:
                if self._stopped():
                    raise ServicesShutDown(self.base_url) from None
                raise
            body = resp.content
            tracing.http_status(span, resp.status_code, server=False)
        return Reply(resp.status_code, dict(resp.headers),
                     _decoded(resp.headers.get("Content-Type", ""), body), body)

    def get(self, path: str, **kwargs) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json=None, **kwargs) -> Reply:
        return self.request("POST", path, json=json, **kwargs)

    def put(self, path: str, json=None, **kwargs) -> Reply:
        return self.request("PUT", path, json=json, **kwargs)

    def delete(self, path: str, **kwargs) -> Reply:
        return self.request("DELETE", path, **kwargs)

    def close(self) -> None:
        self._registered = False
        self.session.close()


class AsyncClient(_Client):
    """An aiohttp JSON client with one reused session; see the module docstring.

    Use it as ``async with AsyncClient(url) as client: reply = await client.get("/users/1")``,
    or create it once and ``await client.close()`` (labkit.shutdown() closes it too).
    Every call takes ``timeout_s=`` (seconds) for that call alone, e.g.
    ``await client.get("/slow", timeout_s=0.5)``; past it aiohttp raises asyncio.TimeoutError.
    """

    def __init__(self, base_url: str, *, timeout_s: float = 5.0, connect_timeout_s: float = 1.0,
                 headers: dict | None = None):
        super().__init__(base_url, timeout_s=timeout_s, connect_timeout_s=connect_timeout_s,
                         headers=headers)
        self.timeout = aiohttp.ClientTimeout(total=self.timeout_s, connect=self.connect_timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def request(self, method: str, path: str, **kwargs) -> Reply:
        if self._session is None or self._session.closed:
            self._session = runtime.session(timeout=self.timeout, headers=self.headers)
        call_s = self._call_timeout_s(kwargs)
        if call_s is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(
                total=call_s, connect=min(self.connect_timeout_s, call_s))
        url = f"{self.base_url}/{path.lstrip('/')}"
        headers = self._headers(kwargs)
        with tracing.outgoing(_span_name(method, path), headers) as span:   # chapter 07
            try:
                async with self._session.request(method, url, headers=headers, **kwargs) as resp:
                    # Read while the response is open: after `async with` the connection is
                    # released.
                    body = await resp.read()
                    tracing.http_status(span, resp.status, server=False)
                    return Reply(resp.status, dict(resp.headers),
                                 _decoded(resp.content_type, body), body)
            except aiohttp.ClientConnectorError:
                if self._stopped():
                    raise ServicesShutDown(self.base_url) from None
                raise

    async def get(self, path: str, **kwargs) -> Reply:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, json=None, **kwargs) -> Reply:
        return await self.request("POST", path, json=json, **kwargs)

    async def put(self, path: str, json=None, **kwargs) -> Reply:
        return await self.request("PUT", path, json=json, **kwargs)

    async def delete(self, path: str, **kwargs) -> Reply:
        return await self.request("DELETE", path, **kwargs)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


async def count_hidden_resends(service, *, n: int = 200, reset_rate: float | None = 0.3,
                               path: str = "/health") -> dict:
    """The chapter's experiment: does a client re-send a GET behind your back?

    Sends `n` GETs to `service` with `reset_rate` set (None: keep the service's own), first
    through a plain ``aiohttp.ClientSession()``, then through `AsyncClient`, and counts what
    each caller saw against what the server received. Plain aiohttp quietly sends a GET again
    after a reset, so its server count is above `n` and its failure share is about
    reset_rate squared; labkit's session does not. The service's knobs are restored after.
    Returns {"plain aiohttp": {...}, "labkit": {...}}, each with calls, server_saw, failed and
    failed_share.
    """
    if not isinstance(service, Service) or not service.running:
        raise ValueError(f"service must be a running labkit service, got {service!r}")
    n = validate.integer("n", n, 1, 5000)
    if reset_rate is not None:
        reset_rate = validate.number("reset_rate", reset_rate, 0, 1)
    saved = service.faults.summary()
    url = service.url + "/" + path.lstrip("/")
    result = {}
    try:
        if reset_rate is not None:
            service.faults.reset_rate = reset_rate

        async def plain_get(session):
            async with session.get(url) as resp:
                await resp.read()

        async with aiohttp.ClientSession() as plain:
            result["plain aiohttp"] = await _count(service, n, lambda: plain_get(plain))
        async with AsyncClient(service.url) as client:
            result["labkit"] = await _count(service, n, lambda: client.get(path))
    finally:
        service.faults.set(**saved)
    return result


async def _count(service, n: int, call) -> dict:
    before, failed = service.requests_seen, 0
    for _ in range(n):
        try:
            await call()
        except aiohttp.ClientConnectionError:
            failed += 1
    saw = service.requests_seen - before
    return {"calls": n, "server_saw": saw, "failed": failed, "failed_share": failed / n}
