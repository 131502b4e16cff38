#!/usr/bin/env python
"""Regenerate docs/lab.png: the sync chapter running in JupyterLab, fault slider moved.

    .venv/bin/python scripts/screenshot_lab.py [--notebook notebooks/01_sync.ipynb] [--out docs/lab.png]

Same harness as the browser test (tests/browser/lab.py): a private JupyterLab on
127.0.0.1 with a token, Debian's Chromium headless (apt-get install chromium),
Run > Run All Cells, then the latency slider is moved with the keyboard and the
picture is taken once the chart shows the new latency. The server log goes to
test-output/screenshot/jupyter-server.log.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.browser import lab  # noqa: E402

KEYS = ["PageUp"] * 4 + ["ArrowRight"] * 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", type=Path, default=lab.CHAPTER_NOTEBOOK.relative_to(REPO_ROOT),
                        help="notebook to open, relative to the repo (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("docs/lab.png"),
                        help="PNG to write, relative to the repo (default: %(default)s)")
    args = parser.parse_args(argv)

    notebook = (REPO_ROOT / args.notebook).resolve()
    out = (REPO_ROOT / args.out).resolve()
    if not notebook.is_file():
        parser.error(f"{notebook} does not exist (try --notebook {lab.FIXTURE_NOTEBOOK.relative_to(REPO_ROOT)})")
    chromium = lab.find_chromium()
    if chromium is None:
        print(lab.MISSING_CHROMIUM, file=sys.stderr)
        return 2

    with lab.lab_session(notebook, chromium, lab.output_dir("screenshot")) as page:
        page.run_all_cells(before_last=True)
        page.wait_panel()
        page.collapse_left_sidebar()
        p50_before = page.wait_first_stats() or 0.0
        slider_before = page.slider_value()
        chart_before = page.chart_src()
        page.move_slider_with_keyboard(KEYS)
        slider_after = page.slider_value()
        if page.wait_readout_latency(slider_after) != slider_after:
            print(f"warning: readout still says {page.readout_text()!r}", file=sys.stderr)
        min_p50 = p50_before + (slider_after - slider_before) / 2
        replaced, p50 = page.wait_chart_redrawn(chart_before, min_p50)
        if not replaced or p50 is None or p50 < min_p50:
            print(f"warning: chart not caught up (p50 {p50}, wanted >= {min_p50:g})", file=sys.stderr)
        page.screenshot(out)
    print(f"wrote {out.relative_to(REPO_ROOT)} ({notebook.relative_to(REPO_ROOT)},"
          f" latency {slider_before:g} -> {slider_after:g} ms, p50 {p50} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
