"""Fan-out tail latency: a page that needs N backend calls is slow if any one call is slow.

Defined in chapter 1. With each call slow with probability p, a page is slow with
probability 1 - (1 - p)^N ("The Tail at Scale", Dean & Barroso, 2013). `measure_fanout`
checks that on real sockets: a private backend delays a share p of its requests
(`latency_rate`), and pages of N concurrent calls are timed.
"""
from __future__ import annotations

import asyncio

import aiohttp
import ipywidgets as W

from labkit._core import runtime
from labkit.obs.metrics import percentile
from labkit.services.http import SPECS, Service, ServiceSpec
from labkit.ui.charts import figure_png, new_figure, show_png

_BACKEND = ServiceSpec("fan-out backend", SPECS["users"].fields, collection="users")


def predicted_share(p: float, n: int) -> float:
    """1 - (1 - p)^n: the share of pages with at least one slow call."""
    return 1 - (1 - p) ** n


async def measure_fanout(n_calls: int, p_slow: float, *, pages: int = 150, slow_ms: float = 30.0,
                         service: Service | None = None) -> dict:
    """Time `pages` pages of `n_calls` concurrent calls where each call is slow (`slow_ms`)
    with probability `p_slow`; return the measured and predicted share of slow pages.

    A page counts as slow when it takes at least 2/3 of `slow_ms` (fast calls take ~1 ms).
    """
    if not isinstance(n_calls, int) or not 1 <= n_calls <= 200:
        raise ValueError(f"n_calls must be an int in [1, 200], got {n_calls!r}")
    if not 0 <= p_slow <= 1:
        raise ValueError(f"p_slow must be in [0, 1], got {p_slow!r}")
    if not isinstance(pages, int) or pages < 1:
        raise ValueError(f"pages must be a positive int, got {pages!r}")
    backend = service or await _backend()
    saved = backend.faults.summary()
    backend.faults.set(latency_dist="fixed", latency_ms=slow_ms, latency_rate=p_slow)
    loop = asyncio.get_running_loop()
    timeout = aiohttp.ClientTimeout(total=10 + slow_ms / 1000)
    page_ms = []
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async def call():
                async with session.get(backend.url + "/health") as resp:
                    await resp.read()

            await call()                                  # warm the connection pool
            for _ in range(pages):
                start = loop.time()
                await asyncio.gather(*(call() for _ in range(n_calls)))
                page_ms.append((loop.time() - start) * 1000)
    finally:
        backend.faults.set(**saved)
    slow = sum(t >= slow_ms * 2 / 3 for t in page_ms)
    return {"n_calls": n_calls, "p_slow": p_slow, "pages": pages, "slow_pages": slow,
            "share_slow": slow / pages, "predicted": predicted_share(p_slow, n_calls),
            "page_p50_ms": percentile(page_ms, 50), "page_p99_ms": percentile(page_ms, 99)}


async def _backend() -> Service:
    running = runtime.services().get(_BACKEND.name)
    return running or await Service(_BACKEND).start()


class FanoutLab:
    """Sliders for p and N; each change measures a batch of pages and plots it on the curve."""

    def __init__(self, *, pages: int = 150):
        self.pages = pages
        self.results: list[dict] = []
        self.p = W.FloatSlider(0.01, min=0.0, max=0.2, step=0.005, readout_format=".1%",
                               description="p (call slow)", continuous_update=False)
        self.n = W.IntSlider(10, min=1, max=60, description="N (calls)", continuous_update=False)
        self.status = W.HTML()
        self.chart = W.Output().add_class("labkit-chart")
        self.widget = W.VBox([W.HBox([self.p, self.n]), self.status, self.chart])
        self._task: asyncio.Task | None = None
        for s in (self.p, self.n):
            s.observe(lambda _: self._schedule(), names="value")

    def _schedule(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = runtime.spawn(self.run())

    async def run(self, p: float | None = None, n: int | None = None) -> dict:
        """Measure at (p, n) (default: the sliders), redraw, and return the result."""
        p = self.p.value if p is None else p
        n = self.n.value if n is None else n
        self.status.value = f"measuring {self.pages} pages of {n} calls…"
        result = await measure_fanout(n, p, pages=self.pages)
        self.results.append(result)
        self.status.value = (f"p={p:.1%}, N={n}: measured {result['share_slow']:.1%} slow pages, "
                             f"predicted {result['predicted']:.1%}")
        self.draw(p)
        return result

    def draw(self, p: float) -> None:
        fig = new_figure(6, 3)
        ax = fig.subplots()
        ns = range(1, 61)
        ax.plot(ns, [predicted_share(p, k) for k in ns], color="#1f77b4",
                label=f"1 − (1 − p)^N, p = {p:.1%}")
        pts = [r for r in self.results if abs(r["p_slow"] - p) < 1e-9]
        if pts:
            ax.plot([r["n_calls"] for r in pts], [r["share_slow"] for r in pts], "o",
                    color="#d62728", label="measured")
        ax.set(xlabel="N calls per page", ylabel="share of slow pages", ylim=(0, 1.02))
        ax.legend(loc="lower right", fontsize=8)
        fig.subplots_adjust(left=0.12, right=0.97, bottom=0.17, top=0.95)
        show_png(self.chart, figure_png(fig), "<fan-out chart>")

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)


def fanout_lab(*, pages: int = 150) -> FanoutLab:
    """The fan-out experiment as a widget: move p and N, watch measured points meet the curve."""
    return FanoutLab(pages=pages)
