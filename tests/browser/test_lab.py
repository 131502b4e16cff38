"""Widgets proven in a real browser: JupyterLab + Debian's headless Chromium.

A person's path through the sync chapter: open it, Run > Run All Cells, move the
latency fault slider with the keyboard, watch the readout, the chart and the
stats change. Kernel-side, the fault setting must follow the slider too.

The fault setting is read from the notebook's own kernel through a second
kernel client (lab.LabServer.kernel_eval: a silent execute with
user_expressions on the kernel's connection file). That needs no extra cell and
no typing into an editor (CodeMirror's bracket auto-closing makes typed code
brittle) and it cannot be satisfied by the page alone.

Screenshots: test-output/<notebook>/lab_before.png and lab_after.png
(lab_failure.png instead of lab_after.png when the test fails);
the server log is test-output/<notebook>/jupyter-server.log.

Run:  .venv/bin/python -m pytest tests/browser -m browser -v
Prove it can fail (slider not observed):  LABKIT_BROWSER_BREAK=1 .venv/bin/python -m pytest tests/browser
(LABKIT_BROWSER_BREAK=model: the readout follows the slider but the fault model does not.)
Another notebook ad hoc:  LABKIT_BROWSER_NOTEBOOK=notebooks/01_sync.ipynb .venv/bin/python -m pytest tests/browser
(the kernel expression read for it comes from lab.FAULT_PROBES, or env LABKIT_BROWSER_PROBE).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from . import lab

# The notebook driven: the sync chapter (its kernel-side fault expression: lab.FAULT_PROBES).
# The fixture notebook is for proving the test can fail (LABKIT_BROWSER_BREAK, see above).
NOTEBOOKS = [lab.CHAPTER_NOTEBOOK]
if os.environ.get("LABKIT_BROWSER_NOTEBOOK"):
    NOTEBOOKS = [(lab.REPO_ROOT / os.environ["LABKIT_BROWSER_NOTEBOOK"]).resolve()]

# What a person presses after clicking the handle: 4 pages up, 2 steps right.
KEYS = ["PageUp"] * 4 + ["ArrowRight"] * 2

READOUT_TIMEOUT = 20   # s: slider -> kernel -> readout round trip
KERNEL_TIMEOUT = 10    # s: kernel-side fault setting follows
CHART_TIMEOUT = 45     # s: background redraw shows the new latency in p50


@pytest.mark.browser
@pytest.mark.timeout(480)
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: Path(path).stem)
def test_latency_slider_drives_readout_fault_and_chart(lab_page: lab.LabPage, out_dir: Path,
                                                        notebook: Path):
    try:
        _person_moves_the_latency_slider(lab_page, out_dir, lab.fault_probe(notebook))
    except BaseException:
        with contextlib.suppress(Exception):
            lab_page.screenshot(out_dir / "lab_failure.png")
        raise
    lab_page.screenshot(out_dir / "lab_after.png")


def _person_moves_the_latency_slider(page: lab.LabPage, out_dir: Path, probe: str) -> None:
    page.run_all_cells(before_last=True)
    page.wait_panel()
    page.collapse_left_sidebar()

    p50_before = page.wait_first_stats()
    assert p50_before is not None, f"stats never showed a p50: {page.stats_text()!r}"
    readout_before = page.readout_text()
    latency_before = lab.parse_number(lab.LATENCY_RE, readout_before)
    assert latency_before is not None, f"readout shows no 'latency <N> ms': {readout_before!r}"
    slider_before = page.slider_value()
    fault_before = float(page.server.kernel_eval(probe))
    assert fault_before == slider_before == latency_before, (
        f"before moving: slider {slider_before}, readout {readout_before!r},"
        f" kernel {probe} = {fault_before} disagree")
    chart_before = page.chart_src()
    assert chart_before.startswith("data:image/png"), "chart holds no PNG image"
    page.screenshot(out_dir / "lab_before.png")

    page.move_slider_with_keyboard(KEYS)
    slider_after = page.slider_value()
    assert slider_after > slider_before, (
        f"the slider did not move ({slider_before} -> {slider_after}) after clicking its"
        f" handle and pressing {KEYS}: the harness could not operate the slider")

    latency_after = page.wait_readout_latency(slider_after, READOUT_TIMEOUT)
    assert latency_after == slider_after, (
        f"readout still says {page.readout_text()!r} {READOUT_TIMEOUT}s after the slider"
        f" moved to {slider_after:g}: the slider is not connected to the readout")

    fault_after = page.poll(lambda: float(page.server.kernel_eval(probe)),
                            lambda value: value == slider_after, KERNEL_TIMEOUT)
    assert fault_after == slider_after, (
        f"kernel-side {probe} is {fault_after:g}, not {slider_after:g}, although"
        f" the readout says {page.readout_text()!r}: the slider does not reach the fault model")

    min_p50 = p50_before + (slider_after - slider_before) / 2
    replaced, p50_after = page.wait_chart_redrawn(chart_before, min_p50, CHART_TIMEOUT)
    assert replaced, f"chart image not redrawn within {CHART_TIMEOUT}s"
    assert p50_after is not None and p50_after >= min_p50, (
        f"chart stats show p50 {p50_after} ms {CHART_TIMEOUT}s after the latency fault"
        f" went {slider_before:g} -> {slider_after:g} ms (p50 was {p50_before:g} ms,"
        f" expected >= {min_p50:g}): the chart does not reflect the fault")
