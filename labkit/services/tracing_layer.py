"""The tracing layer: one server span per request, from the caller's traceparent (chapter 07).

The outermost layer of every labkit service (labkit/services/layers.py). For each request it
reads `traceparent`/`tracestate` (labkit.obs.tracing.extract): a valid header makes the new
server span a child of the caller's span, a missing or invalid one starts a new trace (W3C).
The span is named after the route template, ``GET /items/{id}`` (not the path: one name per
route, whatever the id), carries the service's name, and ends with the response's status,
including the fault layer's 503 (outage) and 504 (deadline) and a reset connection. While the
handler runs the span is the current one (a contextvar), so the service's own outgoing calls
(labkit.services.chain, spec routes using labkit's clients) become its children. Each answer
is also logged to "labkit.requests" (INFO, WARNING for 5xx) while the span is current, so the
record carries its trace and span ids (labkit.obs.logs).
"""
from __future__ import annotations

import logging

from aiohttp import web

from labkit.obs import tracing

#: One line per request (chapter 07's structured logs: labkit.obs.logs.install() collects them).
_log = logging.getLogger("labkit.requests")


def route_name(request: web.Request) -> str:
    """"METHOD /route/{template}"; unmatched paths share one name (bounded cardinality)."""
    route = request.match_info.route
    resource = getattr(route, "resource", None)
    template = getattr(resource, "canonical", None) or "(unmatched)"
    return f"{request.method} {template}"


def install(service, app):
    """Return the middleware that wraps each request of `service` in a server span."""
    name = service.name

    @web.middleware
    async def tracing_layer(request: web.Request, handler):
        tracer = tracing.default()          # read per request: `tracing.set_default` applies
        if not tracer.enabled:
            return await handler(request)
        parent = tracing.extract(request.headers) or tracing.ROOT
        span = tracer.start(route_name(request), service=name, kind="server", parent=parent,
                            attributes={"url.path": request.path})
        token = tracing.attach(span)          # current while the handler runs (a contextvar)
        try:
            response = await handler(request)
            transport = request.transport
            if transport is None or transport.is_closing():
                tracing.error(span, "connection reset")   # the fault layer's reset
            else:
                tracing.http_status(span, response.status, server=True)
            _log.log(logging.WARNING if response.status >= 500 else logging.INFO,
                     "%s %s -> %d", request.method, request.path, response.status,
                     extra={"service": name})     # while the span is current: ids attach
            return response
        except web.HTTPException as exc:              # 404 / 405 raised by the router
            tracing.http_status(span, exc.status, server=True)
            raise
        except BaseException as exc:                  # a bug (500) or the client hung up
            tracing.error(span, exc)
            raise
        finally:
            tracing.detach(token)
            span.end()

    return tracing_layer
