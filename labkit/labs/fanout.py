"""Fan-out tail latency: a page that needs N backend calls is slow if any one call is slow.

Defined in chapter 1. With each call slow with probability p, a page is slow with
probability 1 - (1 - p)^N ("The Tail at Scale", Dean & Barroso, 2013). `measure_fanout`
checks that on real sockets: a private backend delays a share p of its requests by `slow_ms`
(`latency_rate`), and pages of N concurrent calls are sent and timed.

A page counts as slow when the backend delayed at least one of its calls: the ground truth,
read from the backend's own request log (`Service.log`, matched by the `X-Request-Id` each
call carries), not a time threshold. A threshold misleads on a busy machine: 60 concurrent
fast calls can take longer than any fixed cut-off, while the server delayed none of them. The
page times of both classes are still measured and reported, so the chapter shows what a slow
call costs the page (a slow page takes at least `slow_ms`).
"""
from __future__ import annotations

import asyncio
import itertools

import aiohttp
import ipywidgets as W

from labkit._core import runtime
from labkit._core.validate import integer, number
from labkit.obs.metrics import percentile
from labkit.services.http import REQUEST_ID_HEADER, SPECS, Service, ServiceSpec
from labkit.ui.charts import figure_png, new_figure, render_off_loop, show_png
from labkit.ui.latest import LatestRun

__all__ = ["predicted_share", "measure_fanout", "backend", "FanoutLab", "fanout_lab"]

_BACKEND = ServiceSpec("fan-out backend", SPECS["users"].fields, collection="users")
_runs = itertools.count(1)  # a fresh X-Request-Id prefix per measurement, same order every run
MAX_CALLS = 200


def predicted_share(p: float, n: int) -> float:
    """1 - (1 - p)^n: the share of pages with at least one slow call."""
    return 1 - (1 - p) ** n


async def backend() -> Service:
    """The private fan-out backend (started on first use, then reused until shutdown)."""
    running = runtime.services().get(_BACKEND.name)
    return running or await Service(_BACKEND).start()


def _delayed(log, ids: set) -> dict:
    """For each request id in `ids`: did the server delay it? From the server's log entries
    (`Served`), newest first (a page's calls are the last logged).

    The entry's `delay_s` (the delay the fault layer injected) is the ground truth, so a page
    is classified the same way however busy the machine is.
    """
    found: dict = {}
    for served in reversed(log):
        if served.request_id in ids:
            found[served.request_id] = served.delay_s > 0
            if len(found) == len(ids):
                break
    return found


async def measure_fanout(n_calls: int, p_slow: float, *, pages: int = 150, slow_ms: float = 30.0,
                         service: Service | None = None) -> dict:
    """Send `pages` pages of `n_calls` concurrent calls, each delayed `slow_ms` by the backend
    with probability `p_slow`; return the measured and predicted share of slow pages.

    A page is slow when the server delayed at least one of its calls (see the module
    docstring). Returns n_calls, p_slow, pages, calls, slow_calls, call_share_slow,
    slow_pages, share_slow, predicted, and page times in ms: page_p50_ms, page_p99_ms, and
    per class slow_page_p50_ms, slow_page_min_ms, fast_page_p50_ms (None for an empty class).
    `service`: the backend to use (default: `backend()`); its fault knobs are restored after.
    """
    integer("n_calls", n_calls, 1, MAX_CALLS)
    p_slow = number("p_slow", p_slow, 0.0, 1.0)
    integer("pages", pages, 1, 10_000)
    slow_ms = number("slow_ms", slow_ms, 1.0, 10_000.0, unit=" ms")
    if service is not None and not isinstance(service, Service):
        raise ValueError(f"service must be a labkit Service (or None: the private backend), "
                         f"got {service!r}")
    server = service or await backend()
    saved = server.faults.summary()
    server.faults.set(latency_dist="fixed", latency_ms=slow_ms, latency_rate=p_slow)
    loop = asyncio.get_running_loop()
    timeout = aiohttp.ClientTimeout(total=10 + slow_ms / 1000)
    prefix = f"fanout-{next(_runs)}"
    url = server.url + "/health"
    times: dict[bool, list[float]] = {True: [], False: []}
    slow_calls = 0
    try:
        async with runtime.session(timeout=timeout) as session:
            async def call(rid: str) -> None:
                async with session.get(url, headers={REQUEST_ID_HEADER: rid}) as resp:
                    await resp.read()

            await call(f"{prefix}-warm")                      # open a pooled connection
            for page in range(pages):
                ids = [f"{prefix}-{page}-{i}" for i in range(n_calls)]
                start = loop.time()
                await asyncio.gather(*(call(rid) for rid in ids))
                elapsed_ms = (loop.time() - start) * 1000
                delayed = _delayed(server.log, set(ids))
                if len(delayed) != n_calls:
                    raise RuntimeError(f"{server.name}: {n_calls - len(delayed)} call(s) of a page "
                                       f"are missing from its request log")
                hits = sum(delayed.values())
                slow_calls += hits
                times[hits > 0].append(elapsed_ms)
    finally:
        server.faults.set(**saved)

    def p50(xs):
        return percentile(xs, 50) if xs else None

    every = times[True] + times[False]
    slow = len(times[True])
    return {"n_calls": n_calls, "p_slow": p_slow, "pages": pages, "slow_ms": slow_ms,
            "calls": n_calls * pages, "slow_calls": slow_calls,
            "call_share_slow": slow_calls / (n_calls * pages),
            "slow_pages": slow, "share_slow": slow / pages,
            "predicted": predicted_share(p_slow, n_calls),
            "page_p50_ms": percentile(every, 50), "page_p99_ms": percentile(every, 99),
            "slow_page_p50_ms": p50(times[True]),
            "slow_page_min_ms": min(times[True]) if times[True] else None,
            "fast_page_p50_ms": p50(times[False])}


def _chart(p: float, results: list[dict]) -> bytes:
    fig = new_figure(6, 3)
    ax = fig.subplots()
    ns = range(1, 61)
    ax.plot(ns, [predicted_share(p, k) for k in ns], color="#1f77b4",
            label=f"1 − (1 − p)^N, p = {p:.1%}")
    pts = [r for r in results if abs(r["p_slow"] - p) < 1e-9]
    if pts:
        ax.plot([r["n_calls"] for r in pts], [r["share_slow"] for r in pts], "o",
                color="#d62728", label="measured (pages with a delayed call)")
    ax.set(xlabel="N calls per page", ylabel="share of slow pages", ylim=(0, 1.02))
    ax.legend(loc="lower right", fontsize=8)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.17, top=0.95)
    return figure_png(fig)


class FanoutLab:
    """Sliders for p and N; each change measures a batch of pages and plots it on the curve.

    A slider move starts the measurement as a background task (a newer move cancels an older
    one); `await lab.run(p=, n=)` measures from code; `await lab.wait()` waits for the
    measurement a slider started. It keeps the last `MAX_RESULTS` results.
    """

    MAX_RESULTS = 200

    def __init__(self, *, pages: int = 150):
        self.pages = integer("pages", pages, 1, 10_000)
        self.results: list[dict] = []
        self.p = W.FloatSlider(0.01, min=0.0, max=0.2, step=0.005, readout_format=".1%",
                               description="p (call slow)", continuous_update=False)
        self.n = W.IntSlider(10, min=1, max=60, description="N (calls)", continuous_update=False)
        self.status = W.HTML()
        self.chart = W.Output().add_class("labkit-chart")
        self.widget = W.VBox([W.HBox([self.p, self.n]), self.status, self.chart])
        self._latest = LatestRun(self.status, name="labkit-fanout-lab")
        for s in (self.p, self.n):
            s.observe(lambda _: self._schedule(), names="value")

    def _schedule(self) -> None:
        self._latest.start(self.run, f"measuring {self.pages} pages of {self.n.value} calls…")

    async def wait(self, timeout_s: float = 120.0) -> dict | None:
        """Wait (at most `timeout_s` real seconds) for the measurement a slider started."""
        await self._latest.wait(timeout_s)
        return self.results[-1] if self.results else None

    async def run(self, p: float | None = None, n: int | None = None) -> dict:
        """Measure at (p, n) (default: the sliders), redraw, and return the result."""
        p = self.p.value if p is None else p
        n = self.n.value if n is None else n
        self.status.value = f"measuring {self.pages} pages of {n} calls…"
        result = await measure_fanout(n, p, pages=self.pages)
        self.results.append(result)
        del self.results[:-self.MAX_RESULTS]
        fast = result["fast_page_p50_ms"]
        slow = result["slow_page_p50_ms"]
        times = (f"; median page {fast:.0f} ms without a delayed call" if fast is not None else "") \
            + (f", {slow:.0f} ms with one" if slow is not None else "")
        png = await render_off_loop(_chart, p, list(self.results))  # the loop keeps serving
        show_png(self.chart, png, "<fan-out chart>")
        self.status.value = (f"p={p:.1%}, N={n}: measured {result['share_slow']:.1%} slow pages, "
                             f"predicted {result['predicted']:.1%}{times}")
        return result

    def draw(self, p: float) -> None:
        show_png(self.chart, _chart(p, self.results), "<fan-out chart>")

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)


def fanout_lab(*, pages: int = 150) -> FanoutLab:
    """The fan-out experiment as a widget: move p and N, watch measured points meet the curve."""
    return FanoutLab(pages=pages)
