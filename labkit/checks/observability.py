"""Chapter 07's exercises (notebooks/07_observability.ipynb), registered in notebook order."""
from . import obs_traceparent, obs_critical_path, obs_sampling  # noqa: F401
