"""Chapter 04's size-and-speed measurements as one matplotlib Figure (no pyplot).

It reads only the row dicts `labkit.labs.serialization.size_and_speed` returns, so a notebook
can print the numbers and draw the same run. Sizes in bytes, times in microseconds (µs).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from labkit.ui.charts import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["size_chart"]


def _ok_rows(rows) -> list[dict]:
    if not isinstance(rows, (list, tuple)) or not all(isinstance(r, dict) for r in rows):
        raise ValueError("rows must be what size_and_speed() returned (a list of dicts), "
                         f"got {type(rows).__name__}")
    ok = [r for r in rows if not r.get("error") and "raw_bytes" in r]
    if not ok:
        raise ValueError("rows must hold at least one measured row (codec, fixture, raw_bytes, "
                         "gzip_bytes, encode_us, decode_us), as size_and_speed() returns")
    return ok


def size_chart(rows, *, with_speed: bool = True) -> "Figure":
    """One column per fixture. Top: raw and gzip bytes per codec (log scale: fixtures differ
    by orders of magnitude). Bottom (`with_speed`): encode + decode µs per codec, log scale.
    Codecs that could not encode a fixture are left out of that column."""
    ok = _ok_rows(rows)
    fixtures = list(dict.fromkeys(r["fixture"] for r in ok))
    nrows = 2 if with_speed else 1
    fig = new_figure(3.6 * len(fixtures) + 0.8, 3.2 * nrows + 0.4)
    axes = fig.subplots(nrows, len(fixtures), squeeze=False)
    for col, fx in enumerate(fixtures):
        sub = [r for r in ok if r["fixture"] == fx]
        names = [r["codec"] for r in sub]
        xs = list(range(len(sub)))
        ax = axes[0][col]
        ax.bar([x - 0.2 for x in xs], [r["raw_bytes"] for r in sub], 0.4, label="raw")
        ax.bar([x + 0.2 for x in xs], [r["gzip_bytes"] for r in sub], 0.4, label="gzip")
        ax.set_yscale("log")
        ax.set_title(f"{fx}: bytes", fontsize=10)
        ax.set_xticks(xs, names, rotation=45, ha="right", fontsize=8)
        if col == 0:
            ax.set_ylabel("bytes (log)")
            ax.legend(fontsize=8)
        if with_speed:
            ax2 = axes[1][col]
            ax2.bar([x - 0.2 for x in xs], [r["encode_us"] for r in sub], 0.4, label="encode",
                    color="tab:purple")
            ax2.bar([x + 0.2 for x in xs], [r["decode_us"] for r in sub], 0.4, label="decode",
                    color="tab:olive")
            ax2.set_yscale("log")
            ax2.set_title(f"{fx}: µs per call (median)", fontsize=10)
            ax2.set_xticks(xs, names, rotation=45, ha="right", fontsize=8)
            if col == 0:
                ax2.set_ylabel("µs (log)")
                ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig
