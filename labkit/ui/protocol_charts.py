"""Chapter 03's protocol comparison as one matplotlib Figure (no pyplot).

It reads only the plain dicts `labkit.labs.protocol_compare` returns, so a notebook can print
the numbers and draw the same run. Latencies are milliseconds.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from labkit.ui.charts import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["protocol_chart"]


def protocol_chart(results: dict) -> "Figure":
    """Left: p50 and p99 latency per protocol; right: the share of failed calls
    (`fault_chart_data`) or the bytes on the wire per call (`compare_latency`)."""
    rows = {p: r for p, r in results.items() if isinstance(r, dict) and "p50_ms" in r} \
        if isinstance(results, dict) else {}
    if not rows:
        raise ValueError("results must be what fault_chart_data() or compare_latency() returned "
                         "(a dict of protocol -> {'p50_ms': ..., 'p99_ms': ...})")
    names = list(rows)
    xs = range(len(names))
    fig = new_figure(10, 3.6)
    left, right = fig.subplots(1, 2)
    left.bar([x - 0.2 for x in xs], [rows[p]["p50_ms"] for p in names], 0.4, label="p50")
    left.bar([x + 0.2 for x in xs], [rows[p]["p99_ms"] for p in names], 0.4, label="p99")
    left.set_ylabel("latency (ms)")
    faulted = "latency_ms" in results and all("error_share" in rows[p] for p in names)
    if faulted:
        left.axhline(results["latency_ms"], color="0.4", linestyle="--", linewidth=1,
                     label=f"injected {results['latency_ms']:g} ms")
        left.set_title("latency with the same fault on each")
        right.bar(list(xs), [rows[p]["error_share"] for p in names], 0.6, color="tab:red")
        right.axhline(results.get("error_rate", 0), color="0.4", linestyle="--", linewidth=1,
                      label=f"error_rate {results.get('error_rate', 0):.0%}")
        right.set_ylabel("share of calls failed")
        right.set_title("errors seen by the caller")
        right.legend(fontsize=8)
    else:
        left.set_title("latency, same operation")
        right.bar(list(xs), [rows[p].get("bytes_per_call", 0) for p in names], 0.6,
                  color="tab:green")
        right.set_ylabel("bytes on the wire per call")
        right.set_title("request + response, measured")
    left.legend(fontsize=8)
    for ax in (left, right):
        ax.set_xticks(list(xs), [p.replace("/", "/\n") for p in names], fontsize=8)
    fig.tight_layout()
    return fig
