"""Charts of chapter 02's messaging labs, as matplotlib Figure objects (no pyplot).

They read only the plain dicts the labs return (`labkit.labs.prefetch.prefetch_lab`,
`labkit.labs.peak_shaving.peak_lab`), so a notebook can print the numbers and draw the same
run. Times on the axes are seconds; latencies are seconds too, to share the time axis.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from labkit.ui.charts import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["prefetch_chart", "peak_chart"]

_MODES = (("queued", "tab:blue", "through a queue"), ("direct", "tab:red", "direct call"))


def prefetch_chart(results) -> "Figure":
    """Left: messages per consumer for each run; right: makespan and p99 time-in-queue.

    `results`: a list of `prefetch_lab` dicts (e.g. prefetch 1 and 100), or one dict.
    """
    if isinstance(results, dict):
        results = [results]
    results = list(results)
    if not results or not all(isinstance(r, dict) and "per_consumer" in r for r in results):
        raise ValueError("results must be prefetch_lab() results (a dict or a list of them)")
    fig = new_figure(10, 3.6)
    left, right = fig.subplots(1, 2)
    width = 0.8 / len(results)
    for k, r in enumerate(results):
        xs = [i + k * width for i in range(len(r["per_consumer"]))]
        left.bar(xs, r["per_consumer"], width, label=f"prefetch {r['prefetch']}")
    n = len(results[0]["per_consumer"])
    left.set_xticks([i + 0.4 - width / 2 for i in range(n)],
                    [f"#{i}" + (" (slow)" if i == 0 and results[0]["work"] == "uneven"
                                        else "") for i in range(n)])
    left.set_ylabel("messages handled")
    left.set_title("who did the work")
    left.legend()
    labels = [f"prefetch {r['prefetch']}" for r in results]
    xs = range(len(results))
    right.bar([x - 0.2 for x in xs], [r["makespan_s"] for r in results], 0.4, label="makespan")
    right.bar([x + 0.2 for x in xs], [r["time_in_queue_p99_ms"] / 1000 for r in results], 0.4,
              label="p99 time in queue")
    right.set_xticks(list(xs), labels)
    right.set_ylabel("seconds (virtual)")
    right.set_title("how long the backlog took")
    right.legend()
    fig.tight_layout()
    return fig


def peak_chart(result: dict) -> "Figure":
    """Top: waiting orders over time (queue depth / callers in line); bottom: each order's
    end-to-end latency by arrival time, timeouts marked with x at the timeout. Both modes."""
    if not isinstance(result, dict) or not all(m in result for m in ("direct", "queued")):
        raise ValueError("result must be a peak_lab() result")
    fig = new_figure(9, 6)
    top, bottom = fig.subplots(2, 1, sharex=True)
    for mode, color, label in _MODES:
        s = result[mode]["series"]
        top.plot(s["t"], s["depth"], color=color, label=label)
        orders = result[mode]["orders"]
        ok = [(o["t_s"], o["latency_ms"] / 1000) for o in orders if o["latency_ms"] is not None]
        failed = [o["t_s"] for o in orders if o["latency_ms"] is None]
        if ok:
            bottom.scatter(*zip(*ok), s=6 if mode == "queued" else 20, label=f"{label}: "
                           f"{len(ok)} served", **({"color": color} if mode == "queued" else
                                                    {"facecolors": "none", "edgecolors": color}))
        if failed:
            bottom.scatter(failed, [result["timeout_s"]] * len(failed), s=12, marker="x",
                           color="black", label=f"{label}: {len(failed)} timed out")
    top.axvspan(0, result["burst_s"], color="0.9", label="the burst")
    top.set_ylabel("orders waiting")
    top.set_title(f"{result['burst']} orders in {result['burst_s']:g} s, capacity "
                  f"{result['capacity_per_s']:g}/s")
    top.legend()
    bottom.set_xlabel("time (virtual s): arrival of the order")
    bottom.set_ylabel("end-to-end latency (s)")
    bottom.legend()
    fig.tight_layout()
    return fig
