"""labkit.ui.waterfall: a Figure with one row per span (critical path, errors, events drawn),
and the text fallback with the same rows and markers."""
import random

from matplotlib.figure import Figure

from labkit.obs.tracing import SpanRecord
from labkit.ui.charts import figure_png
from labkit.ui.waterfall import waterfall, waterfall_text

T = "4bf92f3577b34da6a3ce929d0e0e4736"


def sp(sid, parent, a_ms, b_ms, service, *, status="ok", events=()):
    return SpanRecord(T, sid, parent, f"op {sid}", service, "internal", a_ms / 1000,
                      b_ms / 1000, status, {}, tuple(events))


SPANS = [sp("root", None, 0, 200, "orders"), sp("inv", "root", 5, 60, "inventory"),
         sp("pay", "root", 65, 190, "payments", status="error", events=[("retry", 0.1, {})]),
         sp("audit", "root", 65, 120, "orders"), sp("late", "root", 210, 260, "notifications"),
         sp("lost", "nowhere", 20, 30, "orders")]


def test_the_figure_has_one_row_per_span_and_renders():
    fig = waterfall(SPANS)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == len(SPANS)
    assert labels[0].strip() == "op root · orders"
    assert labels[1].startswith("  └ ")                       # indented under the root
    assert any("(orphan)" in label for label in labels)
    bold = {t.get_text().strip() for t in ax.get_yticklabels() if t.get_fontweight() == "bold"}
    assert any("op pay" in b for b in bold) and not any("op audit" in b for b in bold)
    assert figure_png(fig)[:4] == b"\x89PNG"


def test_twenty_spans_stay_readable_and_rows_are_capped():
    rng = random.Random(3)
    spans, t = [sp("root", None, 0, 1000, "gateway")], 5.0
    for i in range(19):
        d = rng.uniform(5, 40)
        spans.append(sp(f"s{i}", "root", t, t + d, f"svc{i % 5}"))
        t += d + 1
    fig = waterfall(spans)
    assert len(fig.axes[0].get_yticklabels()) == 20
    assert 6 < fig.get_size_inches()[1] < 9
    capped = waterfall(spans, max_rows=8)
    assert len(capped.axes[0].get_yticklabels()) == 8
    assert "12 rows not shown" in capped.axes[0].get_title()


def test_text_fallback_marks_the_critical_path_errors_and_async_work():
    text = waterfall_text(SPANS)
    lines = text.splitlines()
    assert len(lines) == 2 + len(SPANS)
    row = {line.split("op ")[1].split(" ")[0]: line for line in lines[2:]}
    assert row["root"].startswith("*") and row["pay"].startswith("*!")
    assert not row["audit"].startswith("*")
    assert row["late"][2] == "~" and row["lost"][3] == "?"
    assert "260.0 ms, 6 spans" in lines[0]
    assert "more spans" in waterfall_text(SPANS, max_rows=2)
