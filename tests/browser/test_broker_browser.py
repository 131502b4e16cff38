"""Chapter 02's broker panel and live view, proven in a real browser (JupyterLab + Chromium).

A person's path through the live kitchen (fixture notebook fixture_kitchen.ipynb: a Kitchen on
the embedded broker, `broker_panel(kitchen)` beside `broker_view(kitchen)`): Run All but the
last cell, drag the processing-time slider with the mouse, raise the consumers slider with the
keyboard, click "restart broker", then run the last cell (`await labkit.shutdown()`).
Kernel-side (lab.LabServer.kernel_eval, a second client on the kernel): the kitchen's knobs
follow the sliders, the broker restarted and the kitchen came back, and nothing labkit started
is still running at the end. Page-side: the view's chart image is replaced after the move and
its status line shows the new number of consumers; the panel is WIDTH_PX wide and has no
horizontal scrollbar.

Screenshots: test-output/fixture_kitchen/lab_before.png, lab_after.png (after the moves and
the restart, before shutdown; lab_failure.png when it fails).

Prove it can fail: LABKIT_BROWSER_BREAK=sliders|restart|view|width|leak, read by the fixture
notebook's "break" cell, breaks one behaviour each.

Run:  .venv/bin/python -m pytest tests/browser/test_broker_browser.py -v
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest

from labkit.ui.panel import WIDTH_PX

from . import lab

NOTEBOOK = Path(__file__).resolve().with_name("fixture_kitchen.ipynb")

START = {"processing_ms": 50, "consumers": 2}   # what the fixture's Kitchen.start sets
CONSUMER_KEYS = ["ArrowRight"] * 3             # 2 -> 5 consumers
DRAG_TO = 0.6                                  # processing slider dragged to 60% of its track

KERNEL_TIMEOUT = 15    # s: knob / restart / reconnect seen in the kernel
VIEW_TIMEOUT = 20      # s: the view (refresh 0.5 s) shows the change
CELL_TIMEOUT_MS = 30_000
SHUTDOWN_CELL = "# The end of every chapter"      # the last cell's first line
MIN_TRACK_PX = 30      # a slider track a person can still drag (squeezed tracks are 0 px)


@pytest.fixture
def notebook(monkeypatch) -> Path:
    """The fixture notebook, on the embedded broker whatever $LABKIT_AMQP_URL says."""
    monkeypatch.delenv("LABKIT_AMQP_URL", raising=False)
    return NOTEBOOK


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_broker_panel_drives_kitchen_and_view(lab_page: lab.LabPage, out_dir: Path):
    try:
        _person_plays_with_the_kitchen(lab_page, out_dir)
    except BaseException:
        with contextlib.suppress(Exception):
            lab_page.screenshot(out_dir / "lab_failure.png")
        raise


# --------------------------------------------------------------------------- page helpers

def _slider(page: lab.LabPage, label: str):
    return page.cell.locator(".labkit-panel .widget-slider").filter(
        has=page.page.locator(".widget-label", has_text=label))


def _slider_value(page: lab.LabPage, label: str) -> float:
    return float(_slider(page, label).locator(".widget-readout").inner_text().strip())


def _kernel(page: lab.LabPage, expression: str) -> str:
    return page.server.kernel_eval(expression)


def _knob(page: lab.LabPage, name: str) -> float:
    return float(_kernel(page, f"kitchen.knobs[{name!r}]"))


def _drag(page: lab.LabPage, label: str, fraction: float) -> None:
    """Press the handle, move the mouse along the track, release: a person's drag."""
    slider = _slider(page, label)
    handle = slider.locator(".noUi-handle").bounding_box()
    track = slider.locator(".noUi-target").bounding_box()
    assert handle and track, f"slider {label!r} has no handle or track on screen"
    y = handle["y"] + handle["height"] / 2
    page.page.mouse.move(handle["x"] + handle["width"] / 2, y)
    page.page.mouse.down()
    page.page.mouse.move(track["x"] + track["width"] * fraction, y, steps=8)
    page.page.mouse.up()


def _press(page: lab.LabPage, label: str, keys: list[str]) -> None:
    handle = _slider(page, label).locator(".noUi-handle")
    handle.click()
    for key in keys:
        handle.press(key)
        page.page.wait_for_timeout(80)


def _view_consumers(page: lab.LabPage) -> int | None:
    match = re.search(r"(\d+) consumers", page.stats_text())
    return int(match.group(1)) if match else None


def _panel_box(page: lab.LabPage) -> dict:
    """Width, sideways scrolling, controls sticking out, slider tracks, cut button and control
    labels, dropdowns."""
    return page.cell.locator(".labkit-panel").evaluate(
        """el => {
            const right = el.getBoundingClientRect().right + 1;
            return {
                width: el.getBoundingClientRect().width,
                scroll: el.scrollWidth, client: el.clientWidth,
                sticking_out: [...el.querySelectorAll('*')]
                    .filter(c => c.getBoundingClientRect().right > right).length,
                tracks: Object.fromEntries([...el.querySelectorAll('.widget-slider')].map(s =>
                    [s.querySelector('.widget-label').textContent,
                     s.querySelector('.noUi-target').getBoundingClientRect().width])),
                cut_labels: [...el.querySelectorAll('button')]
                    .filter(b => b.scrollWidth > b.clientWidth).map(b => b.textContent.trim()),
                cut_descriptions: [...el.querySelectorAll('.widget-label')]
                    .filter(l => l.scrollWidth > l.clientWidth).map(l => l.textContent.trim()),
                dropdowns: el.querySelectorAll('.widget-dropdown select').length,
            };
        }""")


def _wait_lab_cell(page: lab.LabPage) -> None:
    """The cell with panel and view shows both sliders' handles and a first chart image
    (lab.LabPage.wait_panel looks for the chapter 01 latency slider instead)."""
    try:
        page.cell.wait_for(state="attached")
    except Exception as exc:
        raise AssertionError("no code cell shows both a .labkit-panel and a .labkit-chart"
                             " after Run All") from exc
    for label in ("cooking (ms)", "consumers"):
        _slider(page, label).locator(".noUi-handle").wait_for(state="visible")
    page.cell.locator(lab.LabPage.CHART_IMG).first.wait_for(state="visible")


def _run_shutdown_cell(page: lab.LabPage) -> None:
    """Select the last cell (`await labkit.shutdown()`), Ctrl+Enter, wait for its count."""
    cells = page.page.locator(".jp-Notebook .jp-CodeCell")
    cell = cells.nth(cells.count() - 1)           # fixed now: Ctrl+Enter adds no cell
    source = cell.inner_text()        # an unseen cell shows its first line, not an editor
    assert SHUTDOWN_CELL in source, f"the last cell is not the shutdown cell: {source!r}"
    cell.click(position={"x": 5, "y": 5})
    page.page.keyboard.press("Control+Enter")
    cell.locator(".jp-InputArea-prompt").filter(has_text=re.compile(r"\[\d+\]")).wait_for(
        timeout=CELL_TIMEOUT_MS)
    errors = cell.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]')
    assert errors.count() == 0, f"the shutdown cell raised:\n{errors.first.inner_text()[-2000:]}"


# --------------------------------------------------------------------------- the path

def _person_plays_with_the_kitchen(page: lab.LabPage, out_dir: Path) -> None:
    page.run_all_cells(before_last=True)
    _wait_lab_cell(page)
    page.collapse_left_sidebar()
    assert _kernel(page, "conn.backend") == "'embedded'"

    # The panel fits: WIDTH_PX wide, nothing sticks out, no horizontal scrollbar.
    box = _panel_box(page)
    assert abs(box["width"] - WIDTH_PX) <= 2, (
        f"the panel is {box['width']:.0f}px wide beside the view, not {WIDTH_PX}px: {box}")
    assert box["scroll"] <= box["client"] and box["sticking_out"] == 0, (
        f"the panel scrolls sideways or has controls sticking out: {box}")
    assert min(box["tracks"].values()) >= MIN_TRACK_PX, f"slider tracks squeezed: {box}"
    assert not box["cut_labels"], f"button labels cut off: {box['cut_labels']}"
    assert not box["cut_descriptions"], f"control labels cut off: {box['cut_descriptions']}"
    assert box["dropdowns"] == 1 and "publish (ms)" in box["tracks"], (
        f"the distribution dropdown or the publish latency slider is missing: {box}")

    for name, value in START.items():
        assert _knob(page, name) == value
    assert _slider_value(page, "cooking (ms)") == START["processing_ms"]
    assert _slider_value(page, "consumers") == START["consumers"]
    page.screenshot(out_dir / "lab_before.png")
    chart_before = page.chart_src()

    # Processing time: a mouse drag along the track.
    _drag(page, "cooking (ms)", DRAG_TO)
    processing = _slider_value(page, "cooking (ms)")
    assert processing > START["processing_ms"] + 200, (
        f"the drag did not move the processing slider (it shows {processing:g}):"
        " the harness could not operate it")
    seen = page.poll(lambda: _knob(page, "processing_ms"), lambda v: v == processing,
                     KERNEL_TIMEOUT)
    assert seen == processing, (
        f"kitchen.knobs['processing_ms'] is {seen:g}, the slider shows {processing:g}:"
        " the slider does not reach the kitchen")

    # Consumers: click the handle, press keys.
    _press(page, "consumers", CONSUMER_KEYS)
    consumers = _slider_value(page, "consumers")
    assert consumers == START["consumers"] + len(CONSUMER_KEYS), (
        f"the consumers slider shows {consumers:g} after {CONSUMER_KEYS}")
    seen = page.poll(lambda: _knob(page, "consumers"), lambda v: v == consumers, KERNEL_TIMEOUT)
    assert seen == consumers, (
        f"kitchen.knobs['consumers'] is {seen:g}, the slider shows {consumers:g}")
    connected = page.poll(lambda: int(_kernel(page, "kitchen.stats()['consumers']")),
                          lambda v: v == consumers, KERNEL_TIMEOUT)
    assert connected == consumers, f"{connected} consumers connected, knob says {consumers:g}"

    # The view: a new chart image, the new consumer count in its status line, the moves marked.
    shown = page.poll(lambda: (page.chart_src() != chart_before, _view_consumers(page)),
                      lambda v: v[0] and v[1] == consumers, VIEW_TIMEOUT)
    assert shown[0], f"the chart image was not redrawn within {VIEW_TIMEOUT}s of the move"
    assert shown[1] == consumers, (
        f"the view's status line says {page.stats_text()!r}, not {consumers:g} consumers")
    marks = _kernel(page, "[text for _, text in view.marks]")
    assert "processing_ms=" in marks and "consumers=" in marks, f"view marks: {marks}"

    # Restart the broker with the button; the kitchen reconnects and goes on.
    published = int(_kernel(page, "kitchen.published"))
    page.cell.locator(".labkit-panel button", has_text="restart broker").click()
    restarts = page.poll(lambda: int(_kernel(page, "kitchen.faults.restarts")),
                         lambda v: v == 1, KERNEL_TIMEOUT)
    assert restarts == 1, f"kitchen.faults.restarts is {restarts} after clicking restart broker"
    back = page.poll(
        lambda: (int(_kernel(page, "kitchen.stats()['consumers']")),
                 int(_kernel(page, "kitchen.published"))),
        lambda v: v[0] == consumers and v[1] > published + 5, KERNEL_TIMEOUT)
    assert back[0] == consumers and back[1] > published + 5, (
        f"after the restart: {back[0]} consumers connected (want {consumers:g}), published"
        f" {published} -> {back[1]}: the kitchen did not come back")
    assert page.readout_text().startswith("embedded broker:"), page.readout_text()

    page.cell.locator(".labkit-panel").scroll_into_view_if_needed()
    page.screenshot(out_dir / "lab_after.png")

    # The last cell: labkit.shutdown(), then nothing of labkit's still running.
    _run_shutdown_cell(page)
    assert _kernel(page, "kitchen.running") == "False"
    assert _kernel(page, "view.running") == "False"
    assert _kernel(page, "LEFTOVER") == "[]", (
        f"labkit tasks still alive after labkit.shutdown(): {_kernel(page, 'LEFTOVER')}")
