"""Chapter 07, exercise 2 (notebooks/07_observability.ipynb): `slowest_on_critical_path`, the
span that made a request slow: of the spans on the critical path, the one with the largest
self time (definitions in labkit/obs/critical_path.py).

Each run generates traces of 4-14 spans (sequential and parallel calls, nested, some calls
back to back) until every known mistake gives a wrong answer on at least one of them, so a
message that names a mistake is backed by the answer's output on every trace shown.
"""
from __future__ import annotations

from labkit.obs.critical_path import build_tree, critical_path
from labkit.obs.tracing import SpanRecord
from . import Wrong, exercise, plain, run_rng


def slowest_on_critical_path(spans):
    """The span_id of the span on the critical path with the largest self time."""
    children = {}
    for s in spans:
        children.setdefault(s.parent_id, []).append(s)
    root = next(s for s in spans if s.parent_id is None)

    def self_time(span):                 # duration minus the union of the children's intervals
        covered, run_start, run_end = 0.0, None, None
        for c in sorted(children.get(span.span_id, []), key=lambda c: c.start_s):
            if run_end is None or c.start_s > run_end:
                if run_end is not None:
                    covered += run_end - run_start
                run_start, run_end = c.start_s, c.end_s
            else:
                run_end = max(run_end, c.end_s)
        if run_end is not None:
            covered += run_end - run_start
        return span.duration_s - covered

    on_path = []

    def walk(span):                      # from the span's end back to its start
        on_path.append(span)
        t = span.end_s
        for c in sorted(children.get(span.span_id, []), key=lambda c: -c.end_s):
            if c.end_s <= t:             # the last child to finish before t: waited for
                walk(c)
                t = c.start_s            # only a child done before this one started is next

    walk(root)
    return max(on_path, key=self_time).span_id


_HINT = ("Walk back from the root's end: at each span take the child that finished last "
         "before the time you are at, walk into it, then continue from that child's start "
         "(sequential children are all on the path; a parallel child that finished earlier is "
         "not). Then compare the self times (duration minus the time covered by children, "
         "overlaps counted once) of the spans you visited.")

_CALLS = (("orders", "POST /orders"), ("inventory", "GET /items/{id}"),
          ("inventory", "SELECT stock"), ("payments", "POST /charge"), ("payments", "call bank"),
          ("notifications", "send email"), ("orders", "render receipt"), ("pricing", "GET /price"))


def _hex(rng, n: int) -> str:
    return f"{rng.getrandbits(4 * n) or 1:0{n}x}"


_UNIT_S = 1e-4                      # times are drawn in whole tenths of a millisecond


def _trace(rng) -> list:
    """One trace, times in tenths of a millisecond."""
    tid, out = _hex(rng, 32), []

    def build(start: int, depth: int, parent_id) -> int:
        sid = _hex(rng, 16)
        service, name = rng.choice(_CALLS)
        kids = rng.randint(1 if depth == 0 else 0, 3) if depth < 3 and len(out) < 9 else 0
        t, done = start + rng.randint(10, 120), 0
        while done < kids:
            if kids - done >= 2 and rng.random() < 0.5:          # two calls in parallel
                e1 = build(t, depth + 1, sid)
                e2 = build(t + rng.randint(0, 40), depth + 1, sid)
                t, done = max(e1, e2), done + 2
            else:
                t, done = build(t, depth + 1, sid), done + 1
            t += rng.choice((0, 0, rng.randint(10, 250)))        # back to back, or a pause
        end = t + (rng.choice((rng.randint(10, 100), rng.randint(200, 700))) if kids
                   else rng.randint(50, 1200))
        out.append(SpanRecord(tid, sid, parent_id, name, service, "internal" if depth else
                              "server", start * _UNIT_S, end * _UNIT_S, "ok", {}, ()))
        return end

    build(0, 0, None)
    return out


def _parallel_trap(rng) -> list:
    """Two calls in parallel: a slow one with no children finishes first (largest self time of
    the trace, off the path), the other makes two calls in a row and finishes last."""
    tid = _hex(rng, 32)
    root, a, b, b1, b2 = (_hex(rng, 16) for _ in range(5))
    t0 = rng.randint(1, 5)
    a_end = t0 + rng.randint(90, 130)
    b1_end = t0 + 2 + rng.randint(40, 60)
    b2_end = b1_end + rng.randint(0, 3) + rng.randint(45, 70)
    b_end = max(b2_end, a_end) + rng.randint(2, 8)
    end = b_end + rng.randint(1, 6)

    def rec(sid, parent, name, service, start, stop):
        return SpanRecord(tid, sid, parent, name, service, "server" if parent is None else
                          "internal", start / 1000, stop / 1000, "ok", {}, ())
    return [rec(root, None, "POST /orders", "orders", 0, end),
            rec(a, root, "GET /price", "pricing", t0, a_end),
            rec(b, root, "GET /items/{id}", "inventory", t0 + 1, b_end),
            rec(b1, b, "SELECT stock", "inventory", t0 + 2, b1_end),
            rec(b2, b, "call supplier", "inventory", b2_end - rng.randint(45, 60), b2_end)]


def _ends_tie(spans) -> bool:
    seen = set()
    for s in spans:
        key = (s.parent_id, s.end_s)
        if key in seen:
            return True
        seen.add(key)
    return False


def _mistakes(spans):
    """{name: the span_id that mistake returns} for one trace."""
    tree = build_tree(spans)
    path = critical_path(tree)
    nodes = tree.nodes
    selfs = {sid: n.self_s for sid, n in nodes.items()}
    root = tree.root

    def chain(pick):
        node, seen = root, [root]
        while node.children:
            node = pick(node.children)
            seen.append(node)
        return max(seen, key=lambda n: selfs[n.span_id]).span_id

    def strict_walk():
        seen, stack = [], [(root, root.span.end_s)]
        while stack:
            node, t = stack.pop()
            seen.append(node)
            for c in sorted(node.children, key=lambda c: -c.span.end_s):
                if c.span.end_s < t:
                    stack.append((c, c.span.end_s))     # (visit order does not matter here)
                    t = c.span.start_s
        return max(seen, key=lambda n: selfs[n.span_id]).span_id

    def sum_self(sid):
        n = nodes[sid]
        return n.span.duration_s - sum(c.span.duration_s for c in n.children)

    on_path = [sid for sid in path.critical_s]
    off_path = [sid for sid in nodes if sid not in path]
    return {
        "anywhere": max(nodes, key=lambda sid: selfs[sid]),
        "duration anywhere": max((sid for sid in nodes if sid != root.span_id),
                                 key=lambda sid: nodes[sid].span.duration_s),
        "duration": max((sid for sid in on_path if sid != root.span_id),
                        key=lambda sid: nodes[sid].span.duration_s),
        "longest child": chain(lambda kids: max(kids, key=lambda c: c.span.duration_s)),
        "last child only": chain(lambda kids: max(kids, key=lambda c: c.span.end_s)),
        "sum of children": max(on_path, key=sum_self),
        "strict": strict_walk(),
        "off path": max(off_path, key=lambda sid: nodes[sid].span.duration_s)
        if off_path else root.span_id,
    }


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
    "strict": "your walk skips a child that ended exactly when the next one started (back to "
              "back calls): compare with <=, a child that ended at time t was done by t",
    "off path": "it is the longest span that is NOT on the critical path",
}
_ORDER = ("anywhere", "duration", "duration anywhere", "longest child", "last child only",
          "sum of children", "strict", "off path")


def _cases(rng, max_cases: int = 12) -> list:
    """Traces with one clear answer (2 ms ahead of the next span on the path, not the root),
    drawn until every mistake is wrong on at least one of them and any two mistakes differ on
    at least one (so a mistake is named only when the answer follows it, not a neighbour)."""
    pairs = {(a, b) for i, a in enumerate(_ORDER) for b in _ORDER[i + 1:]} - \
        {("duration", "duration anywhere")}            # one lesson, whichever is named
    cases, uncovered = [], set(_ORDER) | pairs
    trap_at = rng.randrange(4)
    for _ in range(600):
        spans = _parallel_trap(rng) if len(cases) == trap_at else _trace(rng)
        if len(spans) < 4 or _ends_tie(spans):
            continue
        tree = build_tree(spans)
        if len({round(s.duration_s, 9) for s in spans}) < len(spans) or \
                len({round(n.self_s, 9) for n in tree.nodes.values()}) < len(spans):
            continue                     # no ties: every mistake has exactly one answer
        path = critical_path(tree)
        ranked = sorted((tree.nodes[sid].self_s for sid in path.critical_s), reverse=True)
        want = slowest_on_critical_path(spans)
        if want == tree.root.span_id or ranked[0] - ranked[1] < 0.002:
            continue
        got = _mistakes(spans)
        wrong = {k for k, v in got.items() if v != want} | \
            {(a, b) for a, b in pairs if got[a] != got[b]}
        if wrong & uncovered or len(cases) < 4:
            rng.shuffle(spans)
            cases.append((spans, want))
            uncovered -= wrong
        if not uncovered and len(cases) >= 6 or len(cases) >= max_cases:
            break
    return cases


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
    for spans, want in _cases(run_rng("07.slowest_on_critical_path")):
        given = list(spans)
        got = plain(impl(given), "`slowest_on_critical_path` only reads the spans: make it a "
                                 "plain `def`, not `async def`.")
        by_id = {s.span_id: s for s in spans}
        if isinstance(got, SpanRecord) and got.span_id in by_id:
            got = got.span_id                       # the span itself is a fine answer too
        if got != want and isinstance(got, str) and got not in by_id and \
                got in {s.name for s in spans}:
            raise Wrong(f"it returned {got!r}, a span's name; return its span_id (names repeat "
                        f"can repeat across spans): here {want!r}.", _HINT)
        if got != want and got not in by_id:
            raise Wrong(f"it returned {got!r}, which is not the span_id of any span of the "
                        f"trace; expected {want!r}.", _HINT)
        answers.append((spans, want, got))
    wrong = [(spans, want, got) for spans, want, got in answers if got != want]
    if not wrong:
        return
    per_case = [_mistakes(spans) for spans, _, _ in answers]
    for name in _ORDER:
        telling = [(a, m) for a, m in zip(answers, per_case) if m[name] != a[1]]
        if telling and all(a[2] == m[name] for a, m in telling) and \
                all(a[2] == m[name] for a, m in zip(answers, per_case) if a[2] != a[1]):
            spans, want, got = telling[0][0]
            _explain(spans, want, got, _WHY[name])
    spans, want, got = wrong[0]
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
