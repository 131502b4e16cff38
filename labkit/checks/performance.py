"""Chapter 06's exercises (notebooks/06_performance.ipynb), registered in notebook order."""
from . import perf_batching, perf_cache, perf_hedge  # noqa: F401
