"""Connection pooling, measured (chapter 06, notebooks/06_performance.ipynb).

`compare_pooling(service)` sends the same requests to a labkit service three ways and reports
requests/s, the TCP connections the *server* accepted (`Service.connections_accepted`) and
the time requests spent waiting for a free connection in the client's pool (aiohttp's trace
hooks `on_connection_queued_start/end`):

- "new connection per request": a new `ClientSession` per request (a TCP handshake, and a
  teardown, every time: what `requests.get(...)` or `async with ClientSession()` inside the
  request function does);
- "shared session": one keep-alive session for everything (aiohttp's default pool: up to
  100 connections, reused);
- "pool of k": one session on `TCPConnector(limit=k)`: at most k connections; the others wait.

`TutorialConnectionPool` is the tutorial's pool, kept as a lesson: `get_session` hands out a
new `ClientSession` on one shared connector each time, and a session owns its connector by
default, so closing *any* of them closes the connector the others use (`tutorial_pool_lesson`
shows the error). `SessionPerHost` is the fix: one session per host, made once, owned and
closed once by the pool. Times are seconds unless a name says otherwise.
"""
from __future__ import annotations

import asyncio
import time
from typing import Dict

import aiohttp
from yarl import URL

from labkit._core import validate

__all__ = ["compare_pooling", "measure_mode", "pooling_table", "TutorialConnectionPool", "tutorial_pool_lesson", "SessionPerHost",
           "MODES"]

MODES = ("new connection per request", "shared session", "pool")


def _queue_tracer(waits: list) -> aiohttp.TraceConfig:
    """A TraceConfig that appends, per request that had to queue, the seconds it waited for a
    free connection (loop clock)."""
    tc = aiohttp.TraceConfig()

    async def start(session, ctx, params):
        ctx.queued_at = asyncio.get_running_loop().time()

    async def end(session, ctx, params):
        waits.append(asyncio.get_running_loop().time() - ctx.queued_at)

    tc.on_connection_queued_start.append(start)
    tc.on_connection_queued_end.append(end)
    return tc


async def _drive(url: str, requests: int, concurrency: int, fetch) -> int:
    """`requests` GETs of `url` through `fetch(url)`, `concurrency` at a time; returns the
    number that answered 200."""
    todo = iter(range(requests))
    ok = 0

    async def worker():
        nonlocal ok
        for _ in todo:
            status = await fetch(url)      # (`ok += await ...` would read ok before the await)
            ok += status == 200
    await asyncio.gather(*(worker() for _ in range(min(concurrency, requests))))
    return ok


async def measure_mode(service, mode: str, *, requests: int, concurrency: int,
                       pool_limit: int = 5, timeout_s: float = 30.0) -> dict:
    """One row of `compare_pooling` for `mode` (one of MODES), the service as it is."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    waits: list[float] = []
    tracer = _queue_tracer(waits)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    url = service.url + "/health"
    shared = None
    if mode == "shared session":
        shared = aiohttp.ClientSession(timeout=timeout, trace_configs=[tracer])
    elif mode == "pool":
        shared = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=pool_limit),
                                       timeout=timeout, trace_configs=[tracer])

    async def fetch_shared(u):
        async with shared.get(u) as resp:
            await resp.read()
            return resp.status

    async def fetch_new(u):
        async with aiohttp.ClientSession(timeout=timeout, trace_configs=[tracer]) as s:
            async with s.get(u) as resp:
                await resp.read()
                return resp.status

    before = service.connections_accepted
    start_wall = time.perf_counter()
    try:
        ok = await _drive(url, requests, concurrency,
                          fetch_new if shared is None else fetch_shared)
    finally:
        if shared is not None:
            await shared.close()
    wall_s = time.perf_counter() - start_wall
    label = f"pool of {pool_limit}" if mode == "pool" else mode
    return {"mode": label, "requests": requests, "ok": ok, "concurrency": concurrency,
            "seconds": wall_s, "requests_per_s": requests / wall_s,
            "connections": service.connections_accepted - before,
            "queued": len(waits), "queue_wait_total_s": sum(waits),
            "queue_wait_mean_ms": 1000 * sum(waits) / requests,
            "queue_wait_max_ms": 1000 * max(waits, default=0.0)}


async def compare_pooling(service, *, requests: int = 300, concurrency: int = 30,
                          pool_limit: int = 5, latency_ms: float | None = 5.0,
                          timeout_s: float = 30.0) -> list[dict]:
    """One row per mode (see the module docstring): requests/s, server-side connections
    accepted, requests that queued for a connection and the time they waited (total, mean per
    request, max). `latency_ms` is set on the service for the run (its other fault knobs are
    kept) and restored afterwards; None leaves the service as it is."""
    requests = validate.integer("requests", requests, 1, 100_000)
    concurrency = validate.integer("concurrency", concurrency, 1, 1000)
    pool_limit = validate.integer("pool_limit", pool_limit, 1, 1000)
    timeout_s = validate.number("timeout_s", timeout_s, 0, lo_open=True, unit=" seconds")
    saved = service.faults.summary()
    if latency_ms is not None:
        service.faults.set(latency_ms=validate.number("latency_ms", latency_ms, 0, 60_000,
                                                      unit=" ms"))
    try:
        return [await measure_mode(service, mode, requests=requests, concurrency=concurrency,
                                pool_limit=pool_limit, timeout_s=timeout_s) for mode in MODES]
    finally:
        service.faults.set(**saved)


def pooling_table(rows: list[dict]) -> str:
    """`compare_pooling`'s rows as an aligned text table."""
    head = (f"{'mode':<28}{'req/s':>8}{'server conns':>14}{'queued':>8}"
            f"{'wait mean ms':>14}{'wait max ms':>13}")
    lines = [head]
    for r in rows:
        lines.append(f"{r['mode']:<28}{r['requests_per_s']:>8.0f}{r['connections']:>14}"
                     f"{r['queued']:>8}{r['queue_wait_mean_ms']:>14.2f}"
                     f"{r['queue_wait_max_ms']:>13.1f}")
    return "\n".join(lines)


# ---- the tutorial's pool, as a lesson ---------------------------------------------------------
class TutorialConnectionPool:
    """The tutorial's `ConnectionPool` (source_tutorial_zh.md, "性能优化 / 连接池管理"), as
    written, comments translated. The bug: every `get_session` call returns a *new*
    ClientSession on the one shared connector, and a ClientSession owns the connector it is
    given (connector_owner=True by default): closing any of those sessions closes the
    connector, and every other session of the pool now says "Session is closed"."""

    def __init__(self, max_connections: int = 100,
                 max_connections_per_host: int = 30,
                 keepalive_timeout: int = 30):
        self.max_connections = max_connections
        self.max_connections_per_host = max_connections_per_host
        self.keepalive_timeout = keepalive_timeout
        self._pools: Dict[str, aiohttp.TCPConnector] = {}
        self._locks: Dict[str, asyncio.Lock] = {}

    async def get_session(self, host: str, port: int = 80) -> aiohttp.ClientSession:
        """Get a client session."""
        key = f"{host}:{port}"

        if key not in self._pools:
            async with self._locks.setdefault(key, asyncio.Lock()):
                if key not in self._pools:  # double check
                    connector = aiohttp.TCPConnector(
                        limit=self.max_connections,
                        limit_per_host=self.max_connections_per_host,
                        keepalive_timeout=self.keepalive_timeout,
                        enable_cleanup_closed=True
                    )
                    self._pools[key] = connector

        connector = self._pools[key]
        timeout = aiohttp.ClientTimeout(total=30, connect=10)

        return aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers={'Connection': 'keep-alive'}
        )

    async def close_all(self):
        """Close all connections."""
        for connector in self._pools.values():
            await connector.close()
        self._pools.clear()


async def tutorial_pool_lesson(base_url: str, *, timeout_s: float = 5.0) -> dict:
    """Two parts of a program each take a session for the same host from the tutorial's pool;
    the first finishes and closes its session (as `async with` would). The second, never
    closed by anyone, then fails. Returns what happened (every step bounded by `timeout_s`)."""
    timeout_s = validate.number("timeout_s", timeout_s, 0, lo_open=True, unit=" seconds")
    url = base_url.rstrip("/") + "/health"
    host, port = URL(base_url).host, URL(base_url).port
    pool = TutorialConnectionPool()
    out = {}
    a = b = None
    try:
        async with asyncio.timeout(timeout_s):
            a = await pool.get_session(host, port)
            b = await pool.get_session(host, port)
            out["same_session"] = a is b
            out["same_connector"] = a.connector is b.connector
            async with a.get(url) as resp:
                out["a_status"] = resp.status
            await a.close()                          # part one is done with its session
            out["b_closed_by_anyone"] = False
            out["b.closed"] = b.closed
            try:
                async with b.get(url) as resp:
                    out["b_status"] = resp.status
            except RuntimeError as err:
                out["b_error"] = f"{type(err).__name__}: {err}"
    finally:
        for s in (a, b):
            if s is not None and not s.closed:
                await s.close()
        await pool.close_all()
    return out


# ---- the fix ------------------------------------------------------------------------------------
class SessionPerHost:
    """One keep-alive `ClientSession` per host (scheme://host:port), made on first use and
    owned by this object: callers borrow it and never close it; `close()` closes each once.

    `limit_per_host` bounds the connections to each host (the pool's size; others queue) and
    `timeout_s` is every request's total timeout.
    """

    def __init__(self, *, limit_per_host: int = 30, timeout_s: float = 30.0):
        self.limit_per_host = validate.integer("limit_per_host", limit_per_host, 1, 10_000)
        self.timeout_s = validate.number("timeout_s", timeout_s, 0, lo_open=True,
                                         unit=" seconds")
        self._sessions: Dict[str, aiohttp.ClientSession] = {}
        self._closed = False

    def session(self, base_url: str) -> aiohttp.ClientSession:
        """The session for `base_url`'s host (the same object every time)."""
        if self._closed:
            raise RuntimeError("SessionPerHost is closed: make a new one")
        u = URL(base_url)
        key = f"{u.scheme}://{u.host}:{u.port}"
        s = self._sessions.get(key)       # no await between get and set: no lock needed
        if s is None:
            s = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit_per_host=self.limit_per_host),
                timeout=aiohttp.ClientTimeout(total=self.timeout_s))
            self._sessions[key] = s
        return s

    @property
    def hosts(self) -> list[str]:
        return list(self._sessions)

    async def close(self) -> None:
        """Close every session once; safe to call twice."""
        self._closed = True
        sessions, self._sessions = list(self._sessions.values()), {}
        for s in sessions:
            await s.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()
