"""Pure resilience logic (chapter 05; chapter 06 adds cache, batching, pool, hedging, limiter).

No I/O and no UI: nothing here imports `labkit.services`, `labkit.ui`, aiohttp, matplotlib
or ipywidgets, and time is read from the running loop, so the same code runs on real sockets
and in the virtual-time simulator (`labkit.sim`).
"""
