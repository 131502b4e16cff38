"""Charts of chapter 06's measurements (pooling, batching), as matplotlib Figures (no pyplot).

Each function takes the rows a lab returned and draws only those numbers; show a figure in a
notebook with ``IPython.display.display(fig)``.
"""
from __future__ import annotations

from matplotlib.figure import Figure

from labkit.ui.charts import new_figure

__all__ = ["pooling_chart", "batching_chart"]


def pooling_chart(rows: list[dict]) -> Figure:
    """`labkit.labs.pooling.compare_pooling` rows: requests/s, server-side connections and mean
    wait for a free connection, one bar per mode."""
    fig = new_figure(9.5, 2.8)
    names = [r["mode"].replace(" per ", "\nper ") for r in rows]
    panels = (("requests_per_s", "requests / s", "{:.0f}"),
              ("connections", "connections the server accepted", "{:d}"),
              ("queue_wait_mean_ms", "mean wait for a free connection (ms)", "{:.1f}"))
    for k, (key, title, fmt) in enumerate(panels):
        ax = fig.add_subplot(1, 3, k + 1)
        values = [r[key] for r in rows]
        bars = ax.bar(range(len(rows)), values, color=["#c44e52", "#4c72b0", "#55a868"][:len(rows)])
        ax.set_xticks(range(len(rows)), names, fontsize=7)
        ax.set_title(title, fontsize=9)
        for bar, v in zip(bars, values):
            ax.annotate(fmt.format(v), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)
        ax.margins(y=0.2)
    fig.tight_layout()
    return fig


def batching_chart(rows: list[dict]) -> Figure:
    """`labkit.labs.batching.batching_sweep` rows: throughput against max_batch (a line per
    max_wait) and mean latency against max_wait (a line per max_batch)."""
    fig = new_figure(9.5, 3.0)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    waits = sorted({r["max_wait_ms"] for r in rows})
    sizes = sorted({r["max_batch"] for r in rows})
    for w in waits:
        pts = sorted((r["max_batch"], r["throughput_per_s"]) for r in rows if r["max_wait_ms"] == w)
        left.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"max_wait {w:g} ms")
    offered = rows[0].get("offered_per_s") if rows else None
    if offered:
        left.axhline(offered, color="grey", lw=0.8, ls="--", label="offered load")
    left.set_xscale("log", base=2)
    left.set_xticks(sizes, [str(b) for b in sizes])
    left.minorticks_off()
    left.set_xlabel("max_batch (items)")
    left.set_ylabel("items served / s")
    left.set_title("throughput", fontsize=9)
    left.legend(fontsize=7)
    for b in sizes:
        pts = sorted((r["max_wait_ms"], r["mean_ms"]) for r in rows if r["max_batch"] == b)
        right.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"max_batch {b}")
    right.set_yscale("log")
    right.set_xlabel("max_wait (ms)")
    right.set_ylabel("mean latency per item (ms, log)")
    right.set_title("latency", fontsize=9)
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig
