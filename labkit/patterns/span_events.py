"""Chapter 05's decisions as events on the current span (chapter 07).

A retry, a breaker changing state or a deadline running out is the moment that explains a
slow or failed request; recorded on the span that was running, it shows on that request's
waterfall. This uses only the OpenTelemetry *API* (a contextvar lookup, no SDK): with no span
current, or tracing off, it does nothing. Times are the running loop's clock, like the spans
of labkit.obs.tracing; with no running loop nothing is recorded.
"""
from __future__ import annotations

import asyncio

from opentelemetry import trace as _trace

__all__ = ["emit"]


def emit(name: str, **attributes) -> None:
    """Add event `name` with `attributes` (str, bool, int or float values) to the current span."""
    span = _trace.get_current_span()
    if not span.is_recording():
        return
    try:
        t = asyncio.get_running_loop().time()
    except RuntimeError:
        return
    span.add_event(name, {k: v for k, v in attributes.items() if v is not None},
                   timestamp=int(t * 1e9))
