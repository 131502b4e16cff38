"""Ground floor: the runtime registry (what `labkit.shutdown()` stops), the course seed and
per-instance random streams, and the one argument-validation helper every module uses.
"""
