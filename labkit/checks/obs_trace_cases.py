"""The traces of chapter 7's critical-path check (exercise 07.slowest_on_critical_path, in
notebooks/07_observability.ipynb; the check and its messages are in
labkit/checks/obs_critical_path.py): a random trace generator, hand-built traps that separate
mistakes random traces rarely do, a model of what each known mistake returns on a trace, and
`draw_cases`, which keeps drawing traces until every mistake is wrong on some of them.
"""
from __future__ import annotations

from labkit.obs.critical_path import build_tree, critical_path, union_s
from labkit.obs.tracing import SpanRecord


_CALLS = (("orders", "POST /orders"), ("inventory", "GET /items/{id}"),
          ("inventory", "SELECT stock"), ("payments", "POST /charge"), ("payments", "call bank"),
          ("notifications", "send email"), ("orders", "render receipt"), ("pricing", "GET /price"))


def _hex(rng, n: int) -> str:
    return f"{rng.getrandbits(4 * n) or 1:0{n}x}"


_UNIT_S = 1e-4                      # times are drawn in whole tenths of a millisecond


def trace(rng) -> list:
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


def trap(rng, kind: str) -> list:
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
        return (hi - lo) - union_s(win[c.span_id] for c in kids(node))

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


def mistakes(spans):
    """{name: the span_id that mistake returns} for one trace, in the order given."""
    tree = build_tree(spans)
    path = critical_path(tree)
    nodes, root = tree.nodes, tree.root
    selfs = {sid: n.self_s for sid, n in nodes.items()}
    clipped = _windows(root)
    raw = {sid: (n.span.start_s, n.span.end_s) for sid, n in nodes.items()}
    raw_self = {sid: n.span.duration_s - union_s(raw[c.span_id] for c in n.children)
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


MISTAKE_ORDER = ("anywhere", "duration", "duration anywhere", "longest child", "last child only",
          "sum of children", "all descendants", "strict", "off path", "longest finished",
          "path time", "no root", "no clip", "outliving skipped", "first as root",
          "longest as root", "detached clipped", "own parent window")
_TRAPS = ("parallel", "path time", "outlives", "outlives on path", "outlives longest",
          "outlives longest", "detached", "outliving subtree")


def draw_cases(rng, reference, max_cases: int = 24) -> list:
    """Traces with one clear answer (2 ms ahead of the next span on the path), the hand-shaped
    traps first, then random ones drawn until every mistake is wrong on at least two of them
    and any two mistakes differ on at least one (so a mistake is named only when the answer
    follows it, not a neighbour). `reference(spans)` gives the answer: the exercise's
    reference, passed in by the check."""
    pairs = {(a, b) for i, a in enumerate(MISTAKE_ORDER) for b in MISTAKE_ORDER[i + 1:]} - \
        {("duration", "duration anywhere")}            # one lesson, whichever is named
    cases, uncovered = [], dict.fromkeys(MISTAKE_ORDER, 2) | dict.fromkeys(pairs, 1) | {"no root": 3}
    traps = list(_TRAPS)
    rng.shuffle(traps)
    for _ in range(1000):
        spans = trap(rng, traps[len(cases)]) if len(cases) < len(traps) else trace(rng)
        if len(spans) < 3 or _ends_tie(spans):
            continue
        tree = build_tree(spans)
        attached = [n for n in tree.nodes.values() if not n.after_parent]
        if len({round(s.duration_s, 9) for s in spans}) < len(spans) or \
                len({round(n.self_s, 9) for n in attached}) < len(attached):
            continue                     # no ties: every mistake has exactly one answer
        path = critical_path(tree)
        ranked = sorted((tree.nodes[sid].self_s for sid in path.critical_s), reverse=True)
        want = reference(spans)
        if len(ranked) < 2 or ranked[0] - ranked[1] < 0.002:
            continue
        rng.shuffle(spans)
        got = mistakes(spans)
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
