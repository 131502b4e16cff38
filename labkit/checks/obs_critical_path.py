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

_CALLS = (("orders", "POST /orders"), ("inventory", "GET /items/{id}"),
          ("inventory", "SELECT stock"), ("payments", "POST /charge"), ("payments", "call bank"),
          ("notifications", "send email"), ("orders", "render receipt"), ("pricing", "GET /price"))


def _hex(rng, n: int) -> str:
    return f"{rng.getrandbits(4 * n) or 1:0{n}x}"


_UNIT_S = 1e-4                      # times are drawn in whole tenths of a millisecond


def _trace(rng) -> list:
    """One trace, times in tenths of a millisecond. Now and then a span also makes a call it
    does not wait for: one that runs on after the span ends, or starts 0.1-60 ms after it
    ended; that call may make a call of its own (running on past the first span's end, or
    detached with its parent)."""
    tid, out = _hex(rng, 32), []

    def rec(sid, parent_id, name, service, start, end, depth):
        out.append(SpanRecord(tid, sid, parent_id, name, service, "internal" if depth else
                              "server", start * _UNIT_S, end * _UNIT_S, "ok", {}, ()))

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
        rec(sid, parent_id, name, service, start, end, depth)
        if depth < 3 and len(out) < 11 and rng.random() < 0.3:     # not waited for
            # it outlives the span, or starts 0.1-10 ms or 10-60 ms after the span ended
            a = rng.randint(max(start + 1, end - 400), end - 1) if rng.random() < 0.7 else \
                end + rng.choice((rng.randint(1, 100), rng.randint(100, 600)))
            b, cid = max(a, end) + rng.randint(20, 1500), _hex(rng, 16)
            rec(cid, sid, "consume message", "notifications", a, b, depth + 1)
            if depth < 2 and rng.random() < 0.4:                   # and calls something
                ca = rng.randint(a + 1, end - 1) if a + 1 < end else rng.randint(a, b - 1)
                rec(_hex(rng, 16), cid, "send email", "notifications", ca,
                    max(ca, end) + rng.randint(20, 800), depth + 2)
        return end

    build(0, 0, None)
    return out


def _trap(rng, kind: str) -> list:
    """A hand-shaped trace (ms, jittered) that separates mistakes random traces rarely do:
    "parallel" a slow call with no children finishes first (largest self time, off the
    path) while the other makes two calls in a row; "path time" a span with more time on the
    path than the span with the most self time; "outlives" a call that runs on after its
    parent ended (clipped, it leaves the parent the largest self time); "outlives on path" a
    call that outlives the root and is the path's largest self time once clipped; "outlives
    longest" a consumer that outlives the root, the longest span but not the answer;
    "detached" a call started tens of ms after the root ended, with a call of its own;
    "outliving subtree" a call that outlives the root and makes a call that does too (it
    counts up to the root's end, not its parent's own end)."""
    tid = _hex(rng, 32)
    j = (lambda: rng.randint(0, 3))
    shapes = {
        "parallel": [(None, "POST /orders", 0, 150 + j()), (0, "GET /price", 3, 120 + j()),
                     (0, "GET /items/{id}", 4, 143 + j()), (2, "SELECT stock", 6, 55 + j()),
                     (2, "call supplier", 62 + j(), 125 + j())],
        "path time": [(None, "POST /orders", 0, 123 + j()), (0, "GET /price", 5, 117 - j()),
                      (0, "GET /items/{id}", 6, 122), (2, "SELECT stock", 7, 48 + j()),
                      (2, "call supplier", 43 - j(), 95 + j())],
        "outlives": [(None, "POST /orders", 0, 100 + j()), (0, "GET /items/{id}", 10 - j(), 80),
                     (1, "consume message", 75 - j(), 130 + 10 * j())],
        "outlives on path": [(None, "POST /orders", 0, 100 + j()),
                             (0, "GET /price", 10, 70 + j()),
                             (0, "consume message", 30 - j(), 160 + 10 * j()),
                             (0, "SELECT stock", 2, 8 + j())],
        "outlives longest": [(None, "POST /orders", 0, 100 + j()), (0, "GET /price", 5, 60 + j()),
                             (0, "consume message", 70 - j(), 250 + 10 * j())],
        "detached": [(None, "POST /orders", 0, 100 + j()), (0, "GET /items/{id}", 10, 95 - j()),
                     (0, "consume message", 300 + 10 * j(), 460 + 10 * j()),
                     (2, "send email", 330, 360 + j())],
        "outliving subtree": [(None, "POST /orders", 0, 100 + j()),
                              (0, "GET /items/{id}", 10, 150 + 10 * j()),
                              (1, "SELECT stock", 20, 40 + j()),
                              (1, "consume message", 95 - j(), 160 + 10 * j())],
    }[kind]
    ids = [_hex(rng, 16) for _ in shapes]
    return [SpanRecord(tid, ids[i], None if p is None else ids[p], name, "svc",
                       "server" if p is None else "internal", a / 1000, b / 1000, "ok", {}, ())
            for i, (p, name, a, b) in enumerate(shapes)]


def _ends_tie(spans) -> bool:
    seen = set()
    for s in spans:
        key = (s.parent_id, s.end_s)
        if key in seen:
            return True
        seen.add(key)
    return False


def _windows(top) -> dict:
    """{span_id: (start_s, end_s)} of the nodes under `top` (its own window), each clipped to
    its parent's, leaving out (with their subtrees) the ones that started at or after their
    parent's end (the reference's rule, from any top node)."""
    out, todo = {top.span_id: (top.span.start_s, top.span.end_s)}, [top]
    while todo:
        node = todo.pop()
        lo, hi = out[node.span_id]
        for c in node.children:
            if c.span.start_s < hi or c.span.end_s <= hi:
                out[c.span_id] = (max(c.span.start_s, lo), min(c.span.end_s, hi))
                todo.append(c)
    return out


def _union_s(intervals) -> float:
    covered, run_start, run_end = 0.0, None, None
    for a, b in sorted(intervals):
        if run_end is None or a > run_end:
            if run_end is not None:
                covered += run_end - run_start
            run_start, run_end = a, b
        else:
            run_end = max(run_end, b)
    return covered + (run_end - run_start if run_end is not None else 0.0)


def _visit(top, win: dict, *, choose=None, strict: bool = False) -> list:
    """The nodes a walk back from `top`'s end visits, in the windows `win`: at each node, of
    the children that ended by t, `choose` one (default: the one that ended last)."""
    choose = choose or (lambda cands: max(cands, key=lambda c: win[c.span_id][1]))
    seen, todo = [], [(top, win[top.span_id][1])]
    while todo:
        node, t = todo.pop()
        seen.append(node)
        left = [c for c in node.children if c.span_id in win]
        while True:
            cands = [c for c in left if (win[c.span_id][1] < t if strict
                                         else win[c.span_id][1] <= t)]
            if not cands:
                break
            c = choose(cands)
            left.remove(c)
            todo.append((c, win[c.span_id][1]))
            t = win[c.span_id][0]
    return seen


_TIE = "(a tie)"                    # what a mistake returns when its own ranking ties at the top


def _top(sids, key) -> str:
    """The span id with the largest key, or _TIE if two are within 1 µs (a learner's answer
    with that mistake could return either)."""
    ranked = sorted(sids, key=key, reverse=True)
    if len(ranked) > 1 and key(ranked[0]) - key(ranked[1]) < 1e-6:
        return _TIE
    return ranked[0]


def _walk_best(top, win: dict) -> str:
    """The span_id a learner's walk returns given windows `win` (a child missing from `win` is
    left out): self time = window minus the union of the children's windows; walk back from
    `top`'s end through the children sorted by end, entering each one that ended by t."""
    def kids(node):
        return [c for c in node.children if c.span_id in win]

    def self_s(node):
        lo, hi = win[node.span_id]
        return (hi - lo) - _union_s(win[c.span_id] for c in kids(node))

    seen, todo = [], [top]
    while todo:
        node = todo.pop()
        seen.append(node)
        t = win[node.span_id][1]
        for c in sorted(kids(node), key=lambda c: -win[c.span_id][1]):
            if win[c.span_id][1] <= t:
                todo.append(c)
                t = win[c.span_id][0]
    by_id = {n.span_id: n for n in seen}
    return _top(by_id, lambda sid: self_s(by_id[sid]))


def _unsanitized(root) -> dict:
    """Windows clipped to the parent's without leaving anything out: a child that started
    after its parent ended gets a window that ends before it starts."""
    out, todo = {root.span_id: (root.span.start_s, root.span.end_s)}, [root]
    while todo:
        node = todo.pop()
        lo, hi = out[node.span_id]
        for c in node.children:
            out[c.span_id] = (max(c.span.start_s, lo), min(c.span.end_s, hi))
            todo.append(c)
    return out


def _own_parent_windows(nodes) -> dict:
    """Windows clipped in one pass to each parent's own (unclipped) start and end; a child
    that started at or after its parent's own end is left out."""
    out = {}
    for sid, n in nodes.items():
        p = nodes.get(n.span.parent_id)
        if p is None:
            out[sid] = (n.span.start_s, n.span.end_s)
        elif n.span.start_s < p.span.end_s:
            out[sid] = (max(n.span.start_s, p.span.start_s), min(n.span.end_s, p.span.end_s))
    return out


def _mistakes(spans):
    """{name: the span_id that mistake returns} for one trace, in the order given."""
    tree = build_tree(spans)
    path = critical_path(tree)
    nodes, root = tree.nodes, tree.root
    selfs = {sid: n.self_s for sid, n in nodes.items()}
    clipped = _windows(root)
    raw = {sid: (n.span.start_s, n.span.end_s) for sid, n in nodes.items()}
    raw_self = {sid: n.span.duration_s - _union_s(raw[c.span_id] for c in n.children)
                for sid, n in nodes.items()}

    def best(seen, key=selfs):
        return _top({n.span_id for n in seen}, key.get)

    def chain(pick):
        node, seen = root, [root]
        while node.children:
            node = pick(node.children)
            seen.append(node)
        return best(seen)

    def length(sid):
        return clipped[sid][1] - clipped[sid][0]

    def sum_self(sid):
        return length(sid) - sum(length(c.span_id) for c in nodes[sid].children
                                 if c.span_id in clipped)

    def below(sid):                      # every span under it in the clipped tree
        todo = [c for c in nodes[sid].children if c.span_id in clipped]
        while todo:
            c = todo.pop()
            yield c.span_id
            todo.extend(g for g in c.children if g.span_id in clipped)

    def below_self(sid):
        return length(sid) - sum(length(d) for d in below(sid))

    first = nodes[spans[0].span_id]
    longest = max(nodes.values(), key=lambda n: n.span.duration_s)
    on_path = list(path.critical_s)
    off_path = [sid for sid in nodes if sid not in path]
    return {
        "anywhere": max(nodes, key=lambda sid: selfs[sid]),
        "duration anywhere": max((sid for sid in nodes if sid != root.span_id),
                                 key=lambda sid: nodes[sid].span.duration_s),
        "duration": max((sid for sid in on_path if sid != root.span_id),
                        key=lambda sid: nodes[sid].span.duration_s),
        "longest child": chain(lambda kids: max(kids, key=lambda c: c.span.duration_s)),
        "last child only": chain(lambda kids: max(kids, key=lambda c: c.span.end_s)),
        "sum of children": _top(on_path, sum_self),
        "all descendants": _top(on_path, below_self),
        "strict": best(_visit(root, clipped, strict=True)),
        "off path": max(off_path, key=lambda sid: nodes[sid].span.duration_s)
        if off_path else root.span_id,
        "longest finished": best(_visit(
            root, clipped, choose=lambda cands: max(cands, key=lambda c: c.span.duration_s))),
        "path time": _top(on_path, path.critical_s.get),
        "no root": max((sid for sid in on_path if sid != root.span_id),
                       key=lambda sid: selfs[sid]),
        "no clip": best(_visit(root, raw), raw_self),
        "outliving skipped": best(_visit(root, raw)),
        "first as root": _walk_best(first, _windows(first)),
        "longest as root": _walk_best(longest, _windows(longest)),
        "detached clipped": _walk_best(root, _unsanitized(root)),
        "own parent window": _walk_best(root, _own_parent_windows(nodes)),
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
_ORDER = ("anywhere", "duration", "duration anywhere", "longest child", "last child only",
          "sum of children", "all descendants", "strict", "off path", "longest finished",
          "path time", "no root", "no clip", "outliving skipped", "first as root",
          "longest as root", "detached clipped", "own parent window")
_TRAPS = ("parallel", "path time", "outlives", "outlives on path", "outlives longest",
          "outlives longest", "detached", "outliving subtree")


def _cases(rng, max_cases: int = 24) -> list:
    """Traces with one clear answer (2 ms ahead of the next span on the path), the hand-shaped
    traps first, then random ones drawn until every mistake is wrong on at least two of them
    and any two mistakes differ on at least one (so a mistake is named only when the answer
    follows it, not a neighbour)."""
    pairs = {(a, b) for i, a in enumerate(_ORDER) for b in _ORDER[i + 1:]} - \
        {("duration", "duration anywhere")}            # one lesson, whichever is named
    cases, uncovered = [], dict.fromkeys(_ORDER, 2) | dict.fromkeys(pairs, 1) | {"no root": 3}
    traps = list(_TRAPS)
    rng.shuffle(traps)
    for _ in range(1000):
        spans = _trap(rng, traps[len(cases)]) if len(cases) < len(traps) else _trace(rng)
        if len(spans) < 3 or _ends_tie(spans):
            continue
        tree = build_tree(spans)
        attached = [n for n in tree.nodes.values() if not n.after_parent]
        if len({round(s.duration_s, 9) for s in spans}) < len(spans) or \
                len({round(n.self_s, 9) for n in attached}) < len(attached):
            continue                     # no ties: every mistake has exactly one answer
        path = critical_path(tree)
        ranked = sorted((tree.nodes[sid].self_s for sid in path.critical_s), reverse=True)
        want = slowest_on_critical_path(spans)
        if len(ranked) < 2 or ranked[0] - ranked[1] < 0.002:
            continue
        rng.shuffle(spans)
        got = _mistakes(spans)
        if _TIE in got.values():
            continue                     # a mistake with two answers here: not a clear case
        wrong = {k for k, v in got.items() if v != want} | \
            {(a, b) for a, b in pairs if got[a] != got[b]}
        if wrong & uncovered.keys() or len(cases) < len(traps) + 1:
            cases.append((spans, want))
            for key in wrong & uncovered.keys():
                uncovered[key] -= 1
                if not uncovered[key]:
                    del uncovered[key]
        if not uncovered and len(cases) >= 10 or len(cases) >= max_cases:
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
    per_case = [_mistakes(spans) for spans, _, _ in answers]
    roots = {build_tree(spans).root.span_id for spans, _, _ in answers}
    for name in _ORDER:
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
