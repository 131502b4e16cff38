"""Virtual-time simulation: the same asyncio code, a fake clock, instant runs.

`labkit.sim.loop` holds the virtual-clock event loop and `run`; `labkit.sim.queueing` the
queueing models that run on it. Like `labkit.patterns`, nothing here imports `labkit.services`,
`labkit.ui` or aiohttp. Chapter 05 introduces it; chapter 06 uses it for queueing theory.
"""
from labkit.sim.loop import SimDeadlock, SimTimeout, VirtualClockLoop, now, rng, run, run_async
from labkit.sim.queueing import (Exponential, Fixed, LogNormal, Monitor, RequestRecord, SimService,
                                 poisson_arrivals, poisson_customers)

__all__ = ["SimDeadlock", "SimTimeout", "VirtualClockLoop", "run", "run_async", "now", "rng", "Fixed",
           "Exponential", "LogNormal", "RequestRecord", "SimService", "poisson_arrivals",
           "poisson_customers",
           "Monitor"]
