"""Charts as matplotlib Figure objects outside pyplot, shown as PNGs in an ipywidgets Output.

No pyplot (global state, unsafe in threads) and no ipympl (hangs headless execution): a figure
is drawn to PNG bytes, in a worker thread when it must not stall the loop, and placed in an
``Output``. Used by every chart of the course (chapters 1 and 5 onwards).
"""
from __future__ import annotations

import asyncio
import base64
import io

import ipywidgets as W
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["new_figure", "figure_png", "show_png", "render_off_loop"]


def new_figure(width_in: float, height_in: float) -> Figure:
    """A matplotlib Figure outside pyplot (no global state, safe in a worker thread)."""
    fig = Figure(figsize=(width_in, height_in), dpi=80)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def show_png(output: W.Output, png: bytes, label: str = "<chart>") -> None:
    """Replace what `output` shows with one PNG; safe from background tasks (no `with output:`)."""
    output.outputs = ({"output_type": "display_data", "metadata": {},
                       "data": {"image/png": base64.b64encode(png).decode("ascii"),
                                "text/plain": label}},)


async def render_off_loop(render, *args) -> bytes:
    """`render(*args)` in a worker thread, so ~0.2 s of matplotlib does not add to the
    latencies a live chart measures. On a virtual-time loop (`labkit.sim`), which never waits
    for threads, it renders in place (virtual time does not pass meanwhile)."""
    from labkit.sim.loop import VirtualClockLoop

    if isinstance(asyncio.get_running_loop(), VirtualClockLoop):
        return render(*args)
    return await asyncio.to_thread(render, *args)
