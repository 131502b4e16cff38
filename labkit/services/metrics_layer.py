"""GET /metrics on every labkit service: RED per route in Prometheus text format (chapter 07).

The middleware sits outside the fault layer (see labkit.services.layers), so it sees every
request as the caller does: the fault layer's 503 (outage), injected errors, 504 (deadline)
and resets (status 0: no answer) are counted and timed like any other answer. /metrics is
answered here, before the fault layer: a scrape is never delayed, failed or counted.

Recording is one `labkit.obs.red.RED.record` per request (O(1): a few counters, a bucket
index and a histogram slot). prometheus_client renders the table only when scraped: a
collector registered in the service's own `CollectorRegistry` (never the global one, so two
services in one notebook kernel do not mix) turns it into

    labkit_http_requests_total{service, route, method, status}        counter
    labkit_http_request_errors_total{service, route, method}           counter (5xx, 429, 0)
    labkit_http_request_duration_seconds{service, route, method}       histogram (le buckets)

Routes are aiohttp's templates (``/users/{id}``); an unknown path is ``(unmatched)``, so a
scan of random URLs cannot create unbounded series.
"""
from __future__ import annotations

import asyncio
import weakref

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from labkit.obs.red import RED

__all__ = ["install", "red_of", "registry_of", "PATH", "UNMATCHED"]

PATH = "/metrics"
UNMATCHED = "(unmatched)"
_tables: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # service -> (RED, registry)


class _REDCollector:
    """prometheus_client collector reading a RED table at scrape time."""

    def __init__(self, red: RED):
        self.red = red

    def describe(self):
        return []                                  # no sample collection at registration

    def collect(self):
        name = self.red.service
        requests = CounterMetricFamily(
            "labkit_http_requests", "Requests by route template, method and status "
            "(0 = no HTTP answer: reset or client gone).",
            labels=["service", "route", "method", "status"])
        errors = CounterMetricFamily(
            "labkit_http_request_errors", "Failed requests (5xx, 429 or no answer).",
            labels=["service", "route", "method"])
        duration = HistogramMetricFamily(
            "labkit_http_request_duration_seconds", "Time from request to answer, seconds.",
            labels=["service", "route", "method"])
        for row in list(self.red.rows.values()):
            labels = [name, row.route, row.method]
            for status, count in sorted(row.by_status.items()):
                requests.add_metric([*labels, str(status)], count)
            errors.add_metric(labels, row.errors)
            duration.add_metric(labels, [(_le(le), c) for le, c in row.cumulative_buckets()],
                                sum_value=row.duration_sum_s)
        yield requests
        yield errors
        yield duration


def _le(le: float) -> str:
    return "+Inf" if le == float("inf") else repr(le)


def _table(service) -> tuple[RED, CollectorRegistry]:
    found = _tables.get(service)
    if found is None:
        red = RED(service.name)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_REDCollector(red))
        found = _tables[service] = (red, registry)
    return found


def red_of(service) -> RED:
    """The RED table of a service (kept across restarts, like its `counts`)."""
    return _table(service)[0]


def registry_of(service) -> CollectorRegistry:
    """The service's own prometheus_client registry."""
    return _table(service)[1]


def render(service) -> web.Response:
    """The /metrics answer: the service's registry in Prometheus text format."""
    return web.Response(body=generate_latest(registry_of(service)),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


def install(service, app):
    """Add GET /metrics to `app` and return the middleware that records every request."""
    red, _ = _table(service)

    async def metrics(request):
        return render(service)

    app.router.add_get(PATH, metrics)
    record = red.record

    @web.middleware
    async def metrics_layer(request: web.Request, handler):
        if request.path == PATH and request.method in ("GET", "HEAD"):
            return render(service)                 # before the fault layer, not counted
        loop_time = asyncio.get_running_loop().time
        start = loop_time()
        status = 0
        try:
            response = await handler(request)
            transport = request.transport
            # the fault layer's reset aborts the connection and returns a dummy response
            status = 0 if transport is None or transport.is_closing() else response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except Exception:
            status = 500                           # aiohttp answers 500
            raise
        finally:                                   # CancelledError (client gone): status 0
            resource = request.match_info.route.resource
            end = loop_time()
            record(UNMATCHED if resource is None else resource.canonical, request.method,
                   status, end - start, now_s=end)

    return metrics_layer
