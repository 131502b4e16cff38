"""One trace as a waterfall (Gantt) chart, and the same as text (chapter 07).

One row per span, indented by depth under its parent; bars coloured by service; failed spans
outlined in red with a cross at their end; the critical path (labkit/obs/critical_path.py)
drawn as a thick black line over exactly the stretches that made the request take as long as
it did; span events (retries, breaker transitions, deadline expiry) as ticks on their span's
row; work that outlived its parent (a consumer after the producer returned) drawn hatched.
Time is in ms from the trace's first span. A matplotlib Figure, no pyplot.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from labkit.obs.critical_path import build_tree, critical_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["waterfall", "waterfall_text"]

_PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink",
            "tab:olive", "tab:cyan", "tab:gray")


def _labels(rows, max_chars: int = 48) -> list[str]:
    """Indented "name · service" labels padded to one width: in a monospace font the right-
    aligned tick labels then keep their indentation."""
    out = []
    for node in rows:
        s = node.span
        text = "  " * min(node.depth, 8) + ("└ " if node.depth else "") + \
            f"{s.name} · {s.service}" + (" (orphan)" if node.orphan else "")
        out.append(text if len(text) <= max_chars else text[:max_chars - 1] + "…")
    width = max(map(len, out), default=0)
    return [t.ljust(width) for t in out]


def waterfall(spans, *, title: str | None = None, max_rows: int = 80,
              show_critical: bool = True) -> "Figure":
    """The waterfall of one trace's spans (SpanRecords, any order). At most `max_rows` rows
    (the first in tree order; the title says how many were left out)."""
    from labkit.ui.charts import new_figure

    tree = build_tree(spans)
    rows = tree.rows()
    cut = max(0, len(rows) - max_rows)
    rows = rows[:max_rows]
    path = critical_path(tree) if show_critical else None
    t0 = tree.start_s
    services = sorted({n.span.service for n in rows})
    colour = {svc: _PALETTE[i % len(_PALETTE)] for i, svc in enumerate(services)}
    index = {n.span_id: i for i, n in enumerate(rows)}

    fig = new_figure(12, 1.3 + 0.3 * len(rows))
    ax = fig.add_subplot(1, 1, 1)
    for i, node in enumerate(rows):
        s = node.span
        left, width = (s.start_s - t0) * 1000, max(s.duration_s * 1000, 1e-3)
        error = s.status == "error"
        ax.barh(i, width, left=left, height=0.6, color=colour[s.service],
                alpha=0.45 if node.after_parent else 0.85,
                hatch="//" if node.after_parent else None,
                edgecolor="red" if error else "none", linewidth=2 if error else 0)
        if error:
            ax.plot([left + width], [i], marker="X", color="red", markersize=8, zorder=4)
        for _name, t_s, _attrs in s.events:
            x = (t_s - t0) * 1000
            ax.plot([x, x], [i - 0.38, i + 0.38], color="black", linewidth=1.2, zorder=5)
    if path is not None:
        for span_id, start_s, end_s in path.segments:
            if span_id in index:
                ax.plot([(start_s - t0) * 1000, (end_s - t0) * 1000], [index[span_id]] * 2,
                        color="black", linewidth=3.5, solid_capstyle="butt", zorder=3)
    ax.set_yticks(range(len(rows)), _labels(rows), fontsize=8,
                  fontfamily="monospace")
    for tick, node in zip(ax.get_yticklabels(), rows):
        if path is not None and node.span_id in path:
            tick.set_fontweight("bold")
        if node.span.status == "error":
            tick.set_color("red")
    ax.set_ylim(len(rows) - 0.4, -0.6)                    # first span on top
    ax.set_xlim(0, max((tree.end_s - t0) * 1000, 1e-3) * 1.02)
    ax.set_xlabel("ms since the trace started")
    ax.grid(axis="x", alpha=0.3)
    head = title or f"trace {tree.trace_id[:8]}…: {(tree.end_s - t0) * 1000:.1f} ms, " \
                    f"{len(tree.nodes)} spans"
    ax.set_title(head + (f" ({cut} rows not shown)" if cut else ""), fontsize=10)
    _legend(ax, colour, path is not None, any(n.span.status == "error" for n in rows),
            any(n.span.events for n in rows), any(n.after_parent for n in rows))
    fig.tight_layout()
    return fig


def _legend(ax, colour: dict, critical: bool, errors: bool, events: bool, detached: bool):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=svc) for svc, c in colour.items()]
    if critical:
        handles.append(Line2D([], [], color="black", linewidth=3.5, label="critical path"))
    if errors:
        handles.append(Line2D([], [], color="red", marker="X", linestyle="none", label="error"))
    if events:
        handles.append(Line2D([], [], color="black", marker="|", linestyle="none",
                              markersize=10, label="event"))
    if detached:
        handles.append(Patch(facecolor="white", edgecolor="0.3", hatch="//",
                             label="after its parent returned"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              borderaxespad=0)


def waterfall_text(spans, *, width: int = 40, max_rows: int = 80) -> str:
    """The waterfall as plain text, one line per span: markers (``*`` on the critical path,
    ``!`` failed, ``~`` after its parent returned, ``?`` orphan), start and duration in ms,
    self time, the indented name and service, and a bar `width` characters wide."""
    tree = build_tree(spans)
    path = critical_path(tree)
    t0, total_ms = tree.start_s, max((tree.end_s - tree.start_s) * 1000, 1e-9)
    rows = tree.rows()
    lines = [f"trace {tree.trace_id}: {total_ms:.1f} ms, {len(rows)} spans "
             f"(* critical path, ! error, ~ after its parent returned, ? orphan)",
             f"{'':4} {'start':>8} {'dur':>8} {'self':>8}  span"]
    for node in rows[:max_rows]:
        s = node.span
        marks = ("*" if node.span_id in path else " ") + ("!" if s.status == "error" else " ") \
            + ("~" if node.after_parent else " ") + ("?" if node.orphan else " ")
        a = int((s.start_s - t0) * 1000 / total_ms * width)
        b = max(a + 1, int(round((s.end_s - t0) * 1000 / total_ms * width)))
        bar = " " * a + "█" * (b - a)
        name = "  " * node.depth + f"{s.name} [{s.service}]"
        lines.append(f"{marks} {(s.start_s - t0) * 1000:8.1f} {s.duration_s * 1000:8.1f} "
                     f"{node.self_s * 1000:8.1f}  {name:<44} |{bar:<{width}}|")
    if len(rows) > max_rows:
        lines.append(f"... {len(rows) - max_rows} more spans")
    return "\n".join(lines)
