"""(placeholder: filled in by chapter work)"""
from __future__ import annotations


def install(service, app):
    """Add this layer's routes to `app`; return its middleware, or None."""
    return None
