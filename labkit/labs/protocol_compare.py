"""The same operation over REST/JSON, REST/MessagePack, gRPC/Protobuf and WebSocket, side by
side on real loopback sockets in the running loop (chapter 03).

The servers (the same 100 users on a REST service that also speaks MessagePack and WebSocket,
and on a gRPC server, both with the same fault model) and one client per protocol live in
`labkit.labs.protocol_servers`; `servers()` is re-exported here. This module holds the five
measurements.

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

from labkit._core import runtime, seeding, validate
from labkit.labs.protocol_servers import _Clients, _Tap, servers
# re-exported: the tests and benchmarks/bench_protocols.py use pc.MSGPACK and pc._user
from labkit.labs.protocol_servers import MSGPACK, _user  # noqa: F401
from labkit.obs.metrics import percentile
from labkit.protocols.push import PushService

__all__ = ["PROTOCOLS", "BYTES_COUNTED", "servers", "compare_latency", "compare_throughput",
           "multiplexing", "push_vs_poll", "fault_chart_data"]

PROTOCOLS = ("REST/JSON", "REST/MessagePack", "gRPC/Protobuf", "WebSocket/JSON")
BYTES_COUNTED = ("TCP payload bytes in both directions (HTTP/1.1 headers and bodies, HTTP/2 "
                 "frames with HPACK headers, WebSocket frames), counted by a relay on a warm "
                 "connection, divided by the calls; TCP/IP headers and connection setup excluded")


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
async def compare_throughput(*, concurrency=(1, 50), seconds: float = 0.2, rounds: int = 5,
                             seed: int = 0) -> dict:
    """Requests per second per protocol with each number of concurrent callers (chapter 03).

    Every connection is opened and warmed first (a pool as large as the most callers for each
    REST protocol, the gRPC channel, the WebSocket), so no window pays for connection setup.
    Then `rounds` rounds, each a short window (`seconds` / `rounds`) per (protocol, callers) in
    an order shuffled from `seed`: a busy moment of the machine hits every protocol alike, not
    whichever ran then. A window's rate is the calls started in it over the time until the last
    of them finished. Returns {protocol: {callers: {"per_s", "low_per_s", "high_per_s",
    "calls", "errors"}}}: the rate over all rounds and the lowest and highest round's (the
    spread to print), plus "rounds", "window_s" and "orders" (what ran in each round)."""
    if isinstance(concurrency, int):
        concurrency = (concurrency,)
    levels = tuple(dict.fromkeys(validate.integer("concurrency", c, 1, 500)
                                 for c in concurrency))
    if not levels:
        raise ValueError("concurrency must name at least one number of callers, got ()")
    seconds = validate.number("seconds", seconds, 0, 30, lo_open=True, unit=" s")
    rounds = validate.integer("rounds", rounds, 1, 100)
    seed = validate.integer("seed", seed)
    rest, grpc_svc = await servers()
    loop, window_s = asyncio.get_running_loop(), seconds / rounds
    rng = seeding.rng("protocol_compare:throughput", seed)
    took = {(p, c): [] for p in PROTOCOLS for c in levels}   # (calls, seconds) per round
    errors = dict.fromkeys(took, 0)
    orders: list = []
    clients = await _Clients(rest.port, grpc_svc.port, limit=max(levels)).open()
    try:
        for p in PROTOCOLS:             # open every connection the most callers will use
            await asyncio.gather(*(clients.call(p, "get", f"tput-{seed}-warm-{i}")
                                   for i in range(max(levels))))
        for r in range(rounds):
            order = list(took)
            rng.shuffle(order)
            orders.append(order)
            for p, c in order:
                ids, bad, start = itertools.count(), [0], loop.time()

                async def caller():
                    while loop.time() < start + window_s:
                        rid = f"tput-{seed}-{r}-{c}-{next(ids)}"
                        bad[0] += not await clients.call(p, "get", rid)
                await asyncio.gather(*(caller() for _ in range(c)))
                took[p, c].append((next(ids), loop.time() - start))   # calls, their time
                errors[p, c] += bad[0]
    finally:
        await clients.close()
    out: dict = {p: {} for p in PROTOCOLS}
    for (p, c), per_round in took.items():
        rates = [n / t for n, t in per_round]
        calls = sum(n for n, _ in per_round)
        out[p][c] = {"per_s": calls / sum(t for _, t in per_round), "low_per_s": min(rates),
                     "high_per_s": max(rates), "calls": calls, "errors": errors[p, c]}
    out.update(rounds=rounds, window_s=window_s, orders=orders)
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
    svc = await PushService(history=max(updates, 1000), heartbeat_s=30.0).start()   # the lab's own
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
