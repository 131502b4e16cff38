"""The outer layers every labkit service wears around its fault layer (chapters 06 and 07).

Outermost first: tracing (07: a server span per request, from the caller's traceparent), then
metrics (07: RED counts and durations for /metrics), then load shedding (06: a bounded queue
and a concurrency limit). Each lives in its own module with `install(service, app)`, which may
add routes to `app` and returns an aiohttp middleware, or None when it has nothing to add.
"""
from __future__ import annotations


def outer_middlewares(service, app) -> list:
    """The middlewares `Service.make_app` puts before the fault layer, outermost first."""
    from labkit.services import metrics_layer, shedding, tracing_layer
    found = (layer.install(service, app) for layer in (tracing_layer, metrics_layer, shedding))
    return [mw for mw in found if mw is not None]
