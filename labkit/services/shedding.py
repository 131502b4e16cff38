"""Server-side load shedding: refuse at the door what the service cannot serve in time.

Chapter 06 (overload control). A service that accepts every request under overload queues
them, and every one of them gets slow, including those it could have served. Shedding keeps
a cap on the requests inside the service (a `labkit.patterns.limiter.Limiter`: a fixed cap,
or one that adapts to the measured latency) plus a short bounded queue, and answers the rest
at once with ``503 Service Unavailable`` and ``Retry-After`` (RFC 9110 §15.6.4, §10.2.3):
a definite refusal, cheap for both sides, safe to retry later.

Off by default. Turn it on, or change it, at any time on a running service::

    users.shedding = Shedding(max_concurrency=8, max_queue=16, max_wait_s=0.2)
    users.shedding = Shedding(limiter=Limiter(Gradient(), max_queue=16, max_wait_s=0.2))
    users.shedding = None                                   # off again

`install` (called by labkit.services.layers when the app is made) returns a middleware that
reads `service.shedding` on each request, so a knob set later still takes effect and costs
one attribute read while off. It sits outside the fault layer: a shed request never reaches
it (no injected delay, no handler) and is counted in ``service.counts["shed"]``, in
``service.status_counts[503]`` and in the service's log (fault "shed").
"""
from __future__ import annotations

import asyncio
import math

from aiohttp import web

from labkit._core.validate import integer, number
from labkit.patterns.limiter import FixedLimit, Limiter, Overloaded
from labkit.services import negotiation as neg

__all__ = ["Shedding", "install"]


class Shedding:
    """What `service.shedding` takes: a fixed cap (`max_concurrency`) or a `limiter`.

    `max_queue` requests may wait at most `max_wait_s` seconds for a slot; the rest get 503
    with ``Retry-After: retry_after_s`` (whole seconds, rounded up). `shed` counts them. One
    Shedding object is one limit: give each service its own.
    """

    def __init__(self, max_concurrency: int | None = None, *, max_queue: int = 0,
                 max_wait_s: float = 0.0, retry_after_s: float = 1.0,
                 limiter: Limiter | None = None):
        if (max_concurrency is None) == (limiter is None):
            raise ValueError(f"give either max_concurrency (a fixed cap) or limiter (an adaptive "
                             f"one), not {'both' if limiter is not None else 'neither'}")
        self.retry_after_s = number("retry_after_s", retry_after_s, 0.0, 86400.0, unit=" seconds")
        if limiter is None:
            limiter = Limiter(FixedLimit(integer("max_concurrency", max_concurrency, 1)),
                              max_queue=max_queue, max_wait_s=max_wait_s,
                              retry_after_s=self.retry_after_s, name="shedding")
        elif not isinstance(limiter, Limiter):
            raise ValueError(f"limiter must be a labkit.patterns.limiter.Limiter, got {limiter!r}")
        self.limiter = limiter
        self.retry_after = str(math.ceil(self.retry_after_s))   # the header value
        self.shed = 0

    def summary(self) -> dict:
        return {"shed": self.shed, **self.limiter.summary()}

    def __repr__(self):
        lim = self.limiter
        return (f"Shedding(limit={lim.limit} ({type(lim.algorithm).__name__}), "
                f"max_queue={lim.max_queue}, max_wait_s={lim.max_wait_s:g}, shed={self.shed})")


def install(service, app):
    """Return the middleware that sheds `service`'s excess requests when `service.shedding`
    is set (read per request; None, the default, lets everything through)."""
    from labkit.services.http import REQUEST_ID_HEADER, Served

    def refuse(request, shedding, start):
        shedding.shed += 1
        service.counts["shed"] += 1
        service.status_counts[503] += 1
        service.log.append(Served(start, request.method, request.path, 503, "shed",
                                  asyncio.get_running_loop().time() - start,
                                  request.headers.get(REQUEST_ID_HEADER)))
        return neg.respond(request, 503, {"error": f"{service.name} is overloaded: request shed",
                                          "status": 503}, strict=False,
                           headers={"Retry-After": shedding.retry_after})

    @web.middleware
    async def shedding_layer(request: web.Request, handler):
        shedding = service.shedding
        if shedding is None:
            return await handler(request)
        if not isinstance(shedding, Shedding):
            return neg.respond(request, 500, {"error": f"service.shedding must be a Shedding(...) "
                                                       f"or None, got {shedding!r}",
                                              "status": 500}, strict=False)
        start = asyncio.get_running_loop().time()
        try:
            permit = await shedding.limiter.acquire()
        except Overloaded:
            return refuse(request, shedding, start)
        try:
            response = await handler(request)
        except web.HTTPException:
            permit.success()                 # 404/405 from the router: a normal, timed answer
            raise
        except BaseException:
            permit.ignore()                  # the client hung up, or a bug: no latency sample
            raise
        if response.status == 504:           # the deadline ran out inside: congestion
            permit.dropped()
        else:
            permit.success()
        return response

    return shedding_layer
