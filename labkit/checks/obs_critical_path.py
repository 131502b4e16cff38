"""Chapter 07, exercise 2 (notebooks/07_observability.ipynb): `slowest_on_critical_path`, the
span that made a request slow: of the spans on the critical path, the one with the largest
self time (definitions in labkit/obs/critical_path.py).

Each run generates traces of 4-14 spans (sequential and parallel calls, nested, some calls
back to back) until every known mistake gives a wrong answer on at least one of them, so a
message that names a mistake is backed by the answer's output on every trace shown.

The traces, the traps and the model of each mistake are in labkit/checks/obs_trace_cases.py;
this module holds the reference, the check and its messages.
"""
from __future__ import annotations

from labkit.obs.critical_path import build_tree, critical_path
from labkit.obs.tracing import SpanRecord
from . import Wrong, exercise, plain, run_rng
from .obs_trace_cases import MISTAKE_ORDER, draw_cases, mistakes


def slowest_on_critical_path(spans):
    """The span_id of the span on the critical path with the largest self time."""
    children = {}
    for s in spans:
        children.setdefault(s.parent_id, []).append(s)
    root = next(s for s in spans if s.parent_id is None)
    window = {root.span_id: (root.start_s, root.end_s)}
    todo = [root]
    while todo:                          # clip every child to its parent's window (Jaeger)
        span = todo.pop()
        lo, hi = window[span.span_id]
        for c in children.get(span.span_id, []):
            if c.start_s < hi or c.end_s <= hi:   # else it started at or after its parent's
                                                  # end: left out, with its subtree
                window[c.span_id] = (max(c.start_s, lo), min(c.end_s, hi))
                todo.append(c)

    def kids(span):                      # the children inside the span's window
        return [c for c in children.get(span.span_id, []) if c.span_id in window]

    def self_time(span):                 # its window minus the union of the children's windows
        lo, hi = window[span.span_id]
        covered, run_start, run_end = 0.0, None, None
        for a, b in sorted(window[c.span_id] for c in kids(span)):
            if run_end is None or a > run_end:
                if run_end is not None:
                    covered += run_end - run_start
                run_start, run_end = a, b
            else:
                run_end = max(run_end, b)
        if run_end is not None:
            covered += run_end - run_start
        return (hi - lo) - covered

    on_path = []

    def walk(span):                      # from the span's end back to its start
        on_path.append(span)
        t = window[span.span_id][1]
        for c in sorted(kids(span), key=lambda c: -window[c.span_id][1]):
            start, end = window[c.span_id]
            if end <= t:                 # the last child to finish before t: waited for
                walk(c)
                t = start                # only a child done before this one started is next

    walk(root)
    return max(on_path, key=self_time).span_id


_HINT = ("Find the root (parent_id is None) and clip every span to its parent's clipped window, "
         "from the root down (a child that ran on after its parent ended counts up to the "
         "parent's end; one that started at or after that end is left out, with the calls it "
         "made). Walk back from the root's end: at each span take the child "
         "that finished last before the time you are at, walk into it, then continue from that "
         "child's start (sequential children are all on the path; a parallel child that "
         "finished earlier is not). Then compare the self times (window minus the time covered "
         "by children, overlaps counted once) of the spans you visited, the root included, and "
         "return that span's span_id.")


_WHY = {
    "anywhere": "it is the span with the largest self time in the whole trace, but it is not "
                "on the critical path: it (or the call it is part of) ran in parallel with a "
                "step that finished later, so making it faster would not make the request "
                "faster",
    "duration": "it is the longest span on the critical path (after the root) by total "
                "duration, but its duration includes the time it waited for its children; "
                "rank by self time",
    "duration anywhere": "it is the longest span of the trace (after the root) by total "
                         "duration, but its duration includes the time it waited for its "
                         "children, or it is off the critical path; rank the spans on the "
                         "path by self time",
    "longest child": "it is what you get by following, at each span, its longest child: the "
                     "critical path follows the child that finished last (the one the parent "
                     "waited for), and after it the children that finished before it started",
    "last child only": "it is what you get by following only the child that finished last at "
                       "each span: after that child, the walk must go on from its start to "
                       "the sequential children before it, which are on the path too",
    "sum of children": "your self time subtracts the children's durations one by one, so "
                       "children that ran in parallel are subtracted twice; subtract the time "
                       "covered by at least one child",
    "all descendants": "your self time subtracts the durations of every span below it, "
                       "children and their children: a grandchild's time is already inside "
                       "its parent's window, so it is subtracted twice; subtract only the time "
                       "covered by the span's own children (overlaps counted once)",
    "strict": "your walk skips a child that ended exactly when the next one started (back to "
              "back calls): compare with <=, a child that ended at time t was done by t",
    "off path": "it is the longest span that is NOT on the critical path",
    "longest finished": "your walk takes, of the children that had finished by then, the "
                        "LONGEST one; take the one that finished LAST (the one the parent was "
                        "still waiting for)",
    "path time": "it is the span with the most time on the critical path, but part of that "
                 "time it was waiting on children that are off the path (calls that ran in "
                 "parallel with a later one); rank by self time: its window minus the time "
                 "covered by any of its children",
    "no root": "your answer never returns the root (on no trace here), and here the root has "
               "the largest self time on the critical path: the root is on the path like any "
               "other span, its own work before and after its calls is self time too",
    "no clip": "your self time does not clip children to the span's window: a child that "
               "ran on after its parent ended covers the parent only up to the parent's end "
               "(and the part of a child before its parent started does not count either)",
    "outliving skipped": "your walk never enters a child that ran on after its parent ended: "
                         "clip it to its parent's window first; it then ends when its parent "
                         "ends, so it is the child that finished last and its part up to "
                         "there is on the critical path",
    "first as root": "your walk starts from spans[0], which is not the root here: the spans "
                     "come in any order; find the root as the span whose parent_id is None",
    "longest as root": "your walk starts from the longest span, which is not the root here "
                       "(a consumer that ran on after the root returned can be longer than "
                       "the root): the root is the span whose parent_id is None",
    "detached clipped": "a child that started at or after its parent ended is not clipped, it "
                        "is left out, with the calls it made (no window, no self time): nobody "
                        "waited for it",
    "own parent window": "your windows clip each span to its parent's own start and end, not "
                         "to the parent's clipped window: when the parent ran on after its own "
                         "parent ended, its children count only up to where the parent's "
                         "window was cut (clip from the root down)",
}


def _describe(spans, ids) -> str:
    """The trace as lines: id, name, parent, start-end in ms (only for the message)."""
    lines = []
    for s in sorted(spans, key=lambda s: (s.start_s, -s.end_s)):
        mark = " <- " + ids[s.span_id] if s.span_id in ids else ""
        lines.append(f"  {s.span_id} {s.name!r:20} parent={s.parent_id} "
                     f"{s.start_s * 1000:.1f}-{s.end_s * 1000:.1f} ms{mark}")
    return "\n".join(lines)


@exercise("07.slowest_on_critical_path", reference=slowest_on_critical_path,
          title="Exercise 2 · slowest_on_critical_path", hint=_HINT, timeout_s=15.0)
def check_slowest_on_critical_path(impl) -> None:
    answers = []
    for spans, want in draw_cases(run_rng("07.slowest_on_critical_path"),
                                  slowest_on_critical_path):
        given = list(spans)
        got = plain(impl(given), "`slowest_on_critical_path` only reads the spans: make it a "
                                 "plain `def`, not `async def`.")
        by_id = {s.span_id: s for s in spans}
        if isinstance(got, SpanRecord):
            raise Wrong(f"it returned the span itself ({got.name!r}, a SpanRecord); return its "
                        f"span_id, a string: here the answer is {want!r}.", _HINT)
        if got != want and isinstance(got, str) and got not in by_id and \
                got in {s.name for s in spans}:
            raise Wrong(f"it returned {got!r}, a span's name; return its span_id (names can "
                        f"repeat across spans): here {want!r}.", _HINT)
        if got != want and got not in by_id:
            raise Wrong(f"it returned {got!r}, which is not the span_id of any span of the "
                        f"trace; expected {want!r}.", _HINT)
        answers.append((spans, want, got))
    wrong = [(spans, want, got) for spans, want, got in answers if got != want]
    if not wrong:
        return
    per_case = [mistakes(spans) for spans, _, _ in answers]
    roots = {build_tree(spans).root.span_id for spans, _, _ in answers}
    for name in MISTAKE_ORDER:
        # named only when the answer follows it on two telling traces or more, and on every
        # trace it got wrong ("no root": and it never returned a root)
        telling = [(a, m) for a, m in zip(answers, per_case) if m[name] != a[1]]
        if len(telling) >= 2 and all(a[2] == m[name] for a, m in telling) and \
                all(a[2] == m[name] for a, m in zip(answers, per_case) if a[2] != a[1]) and \
                (name != "no root" or not any(got in roots for _, _, got in answers)):
            spans, want, got = telling[0][0]
            _explain(spans, want, got, _WHY[name])
    spans, want, got = wrong[0]
    tree = build_tree(spans)
    node = tree.nodes[got]
    if all(g == max(sp, key=lambda s: s.duration_s).span_id for sp, _, g in wrong):
        root = " (the root)" if node is tree.root else ""
        _explain(spans, want, got, f"it is the longest span of the trace{root} by total "
                 "duration, but a span's duration includes the time it waited for its "
                 "children; rank the spans on the critical path by self time")
    if all(build_tree(sp).nodes[g].after_parent for sp, _, g in wrong):
        _explain(spans, want, got, "it is detached: it, or a span above it, started at or "
                 "after its parent's end, so nobody waited for it and it is never on the "
                 "critical path")
    _explain(spans, want, got, None)


def _explain(spans, want: str, got: str, why: str | None):
    tree = build_tree(spans)
    path = critical_path(tree)
    g, w = tree.nodes[got], tree.nodes[want]
    where = "on" if got in path else "not on"
    facts = (f"{got} ({g.span.name!r}) is {where} the critical path, self time "
             f"{g.self_s * 1000:.1f} ms, duration {g.span.duration_s * 1000:.1f} ms; the "
             f"answer {want} ({w.span.name!r}) has self time {w.self_s * 1000:.1f} ms on the "
             "critical path")
    msg = f"for this trace it returned {got!r}, expected {want!r}: "
    msg += f"{why}. ({facts}.)" if why else f"{facts}."
    ids = {got: "yours", want: "expected"}
    raise Wrong(msg + "\n" + _describe(spans, ids), _HINT)
