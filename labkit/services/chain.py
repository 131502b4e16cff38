"""Deadline propagation across real services: a front service and the service it calls.

Introduced in chapter 05 (retries). The user calls a *front* service with a deadline: its own
timeout, sent as ``X-Deadline-Remaining-Ms`` (see `labkit.patterns.deadline`). The front's route does
some work of its own, then calls a *downstream* labkit service.

- ``propagate=False`` is what most code does: the front ignores the header, calls downstream
  with a fixed timeout of its own and no deadline. When the user gives up, the downstream
  keeps working on an answer nobody will read.
- ``propagate=True``: the front rebuilds the deadline from the header, checks it before each
  step (no time left: answer 504 without calling anyone), and passes what is left, minus
  `margin_s` for the reply's trip back, to the downstream call, both as its own timeout and in
  the header. A labkit service abandons work past that deadline with 504 (services/http.py), so
  the whole chain stops when the user stops waiting, and the user gets an answer (504)
  instead of a timeout.

Like aiohttp's default server (and Flask, Django, FastAPI), the front finishes its handler
even after its client hangs up: hang-ups do not travel down the chain. (labkit's own services
do cancel a handler on hang-up, aiohttp's opt-in `handler_cancellation`: the best case, which
no proxy, queue or thread-per-request server in between promises you.) The front records each
request it handled as a `Hop`; the downstream's own server-side log (`service.log`) shows how
long it worked. Times are seconds (loop clock) as floats; headers carry whole milliseconds.
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import json
from dataclasses import asdict, dataclass

import aiohttp
from aiohttp import web

from labkit._core import runtime, validate
from labkit.obs import tracing
from labkit.patterns.deadline import HEADER, Deadline, decode_remaining_ms
from labkit.services.http import REQUEST_ID_HEADER, Service, ServiceSpec

__all__ = ["Hop", "Chain", "relay", "relay_handler", "start_chain", "call_with_deadline", "worked_after",
           "deadline_demo"]


@dataclass(frozen=True)
class Hop:
    """One request the front handled, from its own point of view (loop-clock seconds)."""

    start: float
    end: float
    received_ms: int | None     # the deadline the caller sent, ms (None: no header)
    sent_ms: int | None         # the deadline the front passed downstream, ms (None: not sent)
    downstream: str             # downstream status ("200", "504"), "timeout", or "not called"
    answered: int               # the status the front answered with


def relay_handler(chain: "Chain"):
    """The front's route handler for `chain` (a ServiceSpec route: handler(service, request)).

    The work runs in its own task, so a client hanging up does not stop it (see the module
    docstring); the handler waits for it and answers with its status.
    """
    async def handler(service, request: web.Request) -> web.Response:
        work = runtime.spawn(relay(chain, request.headers.get(HEADER)), name="labkit-relay")
        chain._inflight.add(work)
        work.add_done_callback(chain._inflight.discard)
        status, body = await asyncio.shield(work)
        return web.Response(status=status, text=json.dumps(body), content_type="application/json")
    return handler


async def relay(chain: "Chain", header: str | None) -> tuple[int, dict]:
    """The front's work for one request whose caller sent `header` (X-Deadline-Remaining-Ms
    or None): its own work, then the downstream call. Returns (status, body) to answer with."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    # The front's fault layer already answered a malformed or expired header (400 / 504).
    received = round(decode_remaining_ms(header) * 1000) if header is not None else None
    deadline = full = None
    if chain.propagate and received is not None:
        full = Deadline.after(received / 1000, now=start)
        deadline = full.shrink(chain.margin_s)   # keep time for our reply's trip back
    await asyncio.sleep(chain.work_s)                      # the front's own work (a DB query, say)
    sent, downstream, answer = None, "not called", 200
    if deadline is not None and deadline.expired():
        answer = 504                                       # no time left: do not call anyone
    else:
        headers = {REQUEST_ID_HEADER: f"{chain.front.name}-{next(chain._calls)}"}
        tracing.inject(headers)          # chapter 07: the downstream's span is this hop's child
        timeout_s = chain.fixed_timeout_s
        if deadline is not None:
            headers.update(deadline.to_headers())
            sent = int(headers[HEADER])
            timeout_s = max(full.remaining_s(), 0.001)   # time to hear downstream's 504
        try:
            async with chain.session().get(chain.downstream.url + chain.path, headers=headers,
                                           timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                await resp.read()
                downstream = str(resp.status)
                answer = 200 if resp.status < 400 else (504 if resp.status == 504 else 502)
        except (TimeoutError, asyncio.TimeoutError):
            downstream, answer = "timeout", 504
        except aiohttp.ClientError as err:
            downstream, answer = type(err).__name__, 502
    hop = Hop(start, loop.time(), received, sent, downstream, answer)
    chain.hops.append(hop)
    return answer, {"front": chain.front.name if chain.front else None, "downstream": downstream}


class Chain:
    """A front service relaying to `downstream`; build it with `start_chain`."""

    def __init__(self, downstream: Service, *, propagate: bool, work_s: float, margin_s: float,
                 fixed_timeout_s: float, path: str):
        self.downstream = downstream
        self.propagate = propagate
        self.work_s, self.margin_s, self.fixed_timeout_s = work_s, margin_s, fixed_timeout_s
        self.path = path
        self.front: Service | None = None
        self.hops: collections.deque[Hop] = collections.deque(maxlen=1000)   # the last 1000
        self._calls = itertools.count(1)       # request ids for the downstream calls
        self._inflight: set[asyncio.Task] = set()
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = runtime.session()
        return self._session

    async def call(self, timeout_s: float) -> dict:
        """The user: GET front /page with deadline `timeout_s`; see `call_with_deadline`."""
        return await call_with_deadline(self.front.url + "/page", timeout_s)

    async def settle(self, timeout_s: float = 10.0) -> None:
        """Wait until the front has finished every request it started (at most `timeout_s`)."""
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=timeout_s)

    def summary(self) -> dict:
        return {"propagate": self.propagate, "front": self.front.name if self.front else None,
                "downstream": self.downstream.name, "hops": [asdict(h) for h in self.hops]}


async def start_chain(downstream: Service, *, propagate: bool, work_s: float = 0.3,
                      margin_s: float = 0.05, fixed_timeout_s: float = 5.0, path: str = "/health",
                      name: str | None = None) -> Chain:
    """Start a front service (route ``GET /page``) that works `work_s` seconds, then calls
    ``GET {path}`` on `downstream` (a running labkit service); see the module docstring.

    `fixed_timeout_s` is the front's own timeout when it does not propagate. The front is named
    "front (propagates deadline)" or "front (no propagation)" unless `name` is given.
    """
    work_s = validate.number("work_s", work_s, 0, 300, unit=" seconds")
    margin_s = validate.number("margin_s", margin_s, 0, 300, unit=" seconds")
    fixed_timeout_s = validate.number("fixed_timeout_s", fixed_timeout_s, 0, 300, lo_open=True,
                                      unit=" seconds")
    propagate = validate.boolean("propagate", propagate)
    if not isinstance(downstream, Service) or not downstream.running:
        raise ValueError(f"downstream must be a running labkit service, got {downstream!r}")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"path must be a str starting with /, got {path!r}")
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"name must be a non-empty str or None, got {name!r}")
    chain = Chain(downstream, propagate=propagate, work_s=work_s, margin_s=margin_s,
                  fixed_timeout_s=fixed_timeout_s, path=path)
    name = name or ("front (propagates deadline)" if propagate else "front (no propagation)")
    running = runtime.services().get(name)
    if running is not None:
        await running.stop()                 # a re-run cell rebuilds the chain
    chain.front = await Service(ServiceSpec(name, routes=(("GET", "/page", relay_handler(chain)),))).start()
    return chain


async def call_with_deadline(url: str, timeout_s: float) -> dict:
    """GET `url` sending our deadline (`timeout_s`) in X-Deadline-Remaining-Ms, and give up
    after `timeout_s`. Returns {"status": int or "timeout", "elapsed_s", "start", "gave_up_at"}
    (loop-clock seconds; gave_up_at is None when an answer came)."""
    timeout_s = validate.number("timeout_s", timeout_s, 0, 300, lo_open=True, unit=" seconds")
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = Deadline.after(timeout_s, now=start)
    async with runtime.session() as session:        # never re-sends behind our back
        try:
            async with session.get(url, headers=deadline.to_headers(now=start),
                                   timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                await resp.read()
                status, gave_up = resp.status, None
        except (TimeoutError, asyncio.TimeoutError):
            status, gave_up = "timeout", loop.time()
    end = loop.time()
    return {"status": status, "elapsed_s": end - start, "start": start, "gave_up_at": gave_up}


def worked_after(service: Service, t: float, *, since: float | None = None) -> float:
    """Seconds of work `service` did after loop time `t`, by its server-side log (requests
    that arrived at or after `since`, default: all), summed over requests."""
    total = 0.0
    for s in service.log:
        if since is not None and s.t < since:
            continue
        total += max(0.0, s.t + s.duration_s - t)
    return total


async def deadline_demo(downstream: Service, *, propagate: bool, user_timeout_s: float = 1.0,
                        work_s: float = 0.3, margin_s: float = 0.05) -> dict:
    """One user request through a fresh chain to `downstream` (set its latency first): what the
    user saw, what the front did, and what the downstream's own log says, in seconds after the
    user's call started."""
    chain = await start_chain(downstream, propagate=propagate, work_s=work_s, margin_s=margin_s)
    seen = len(downstream.log)
    user = await chain.call(user_timeout_s)
    await chain.settle()
    t0 = user["start"]
    gave_up = user["gave_up_at"] if user["gave_up_at"] is not None else t0 + user["elapsed_s"]
    served = [s for s in list(downstream.log)[seen:]]
    hop = chain.hops[-1] if chain.hops else None
    result = {
        "propagate": propagate,
        "user": {"status": user["status"], "waited_s": round(user["elapsed_s"], 3),
                 "sent_ms": int(user_timeout_s * 1000)},
        "front": None if hop is None else {
            "received_ms": hop.received_ms, "sent_ms": hop.sent_ms, "downstream": hop.downstream,
            "answered": hop.answered, "finished_at_s": round(hop.end - t0, 3)},
        "downstream": [{"status": s.status, "fault": s.fault, "started_at_s": round(s.t - t0, 3),
                        "finished_at_s": round(s.t + s.duration_s - t0, 3)} for s in served],
        "downstream_worked_after_user_left_s": round(
            sum(max(0.0, s.t + s.duration_s - gave_up) for s in served), 3),
    }
    await chain.front.stop()
    return result
