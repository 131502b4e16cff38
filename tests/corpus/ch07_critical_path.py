"""Chapter 07, exercise 2 · slowest_on_critical_path: answers a learner writes (see
tests/wrong_answers.py for the format). The first WRONG entry is the notebook's."""

_SELF = '''
def _children(spans):
    kids = {}
    for s in spans:
        kids.setdefault(s.parent_id, []).append(s)
    return kids


def _windows(spans, kids, root=None):
    """Every span clipped to its parent's window; children that started after their parent
    ended are left out (Jaeger's rule)."""
    root = root or next(s for s in spans if s.parent_id is None)
    win, todo = {root.span_id: (root.start_s, root.end_s)}, [root]
    while todo:
        s = todo.pop()
        lo, hi = win[s.span_id]
        for c in kids.get(s.span_id, []):
            if c.start_s < hi or c.end_s <= hi:
                win[c.span_id] = (max(c.start_s, lo), min(c.end_s, hi))
                todo.append(c)
    return win


def _self_time(span, kids, win):
    if span.span_id not in win:
        return 0.0
    lo, hi = win[span.span_id]
    covered, run_start, run_end = 0.0, None, None
    for a, b in sorted(win[c.span_id] for c in kids.get(span.span_id, []) if c.span_id in win):
        if run_end is None or a > run_end:
            if run_end is not None:
                covered += run_end - run_start
            run_start, run_end = a, b
        else:
            run_end = max(run_end, b)
    if run_end is not None:
        covered += run_end - run_start
    return (hi - lo) - covered


def _path(spans, kids, win, strict=False, pick=None, root=None):
    root = root or next(s for s in spans if s.parent_id is None)
    out = []

    def walk(span):
        out.append(span)
        t = win[span.span_id][1]
        left = [c for c in kids.get(span.span_id, []) if c.span_id in win]
        while True:
            done = [c for c in left if (win[c.span_id][1] < t if strict
                                        else win[c.span_id][1] <= t)]
            if not done:
                return
            c = (pick or (lambda cs: max(cs, key=lambda c: win[c.span_id][1])))(done)
            left.remove(c)
            walk(c)
            t = win[c.span_id][0]
    walk(root)
    return out
'''

_OLD = '''
def _old_self(span, kids):          # no clipping: the whole child interval is subtracted
    covered, run_start, run_end = 0.0, None, None
    for c in sorted(kids.get(span.span_id, []), key=lambda c: c.start_s):
        if run_end is None or c.start_s > run_end:
            if run_end is not None:
                covered += run_end - run_start
            run_start, run_end = c.start_s, c.end_s
        else:
            run_end = max(run_end, c.end_s)
    if run_end is not None:
        covered += run_end - run_start
    return span.duration_s - covered


def _raw_path(spans, kids):         # walks the spans' own times: never enters a child that
    root = next(s for s in spans if s.parent_id is None)     # ended after its parent
    on_path = []

    def walk(span):
        on_path.append(span)
        t = span.end_s
        for c in sorted(kids.get(span.span_id, []), key=lambda c: -c.end_s):
            if c.end_s <= t:
                walk(c)
                t = c.start_s
    walk(root)
    return on_path
'''

_HELPERS = '''
def _kids(spans):
    k = {}
    for s in spans:
        k.setdefault(s.parent_id, []).append(s)
    return k

def _union(iv):
    tot, a0, b0 = 0.0, None, None
    for a, b in sorted(iv):
        if b0 is None or a > b0:
            if b0 is not None:
                tot += b0 - a0
            a0, b0 = a, b
        else:
            b0 = max(b0, b)
    return tot + (b0 - a0 if b0 is not None else 0.0)
'''

WRONG = [
    ("07.slowest_on_critical_path", "critical path: longest span by total duration", _SELF + '''
def slowest_on_critical_path(spans):
    kids = _children(spans)
    win = _windows(spans, kids)
    on_path = [s for s in _path(spans, kids, win) if s.parent_id is not None]
    return max(on_path, key=lambda s: s.duration_s).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: longest non-root span of the trace", '''
def slowest_on_critical_path(spans):
    return max((s for s in spans if s.parent_id is not None),
               key=lambda s: s.end_s - s.start_s).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: largest self time, path ignored", _SELF + '''
def slowest_on_critical_path(spans):
    kids = _children(spans)
    win = _windows(spans, kids)
    return max(spans, key=lambda s: _self_time(s, kids, win)).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: follows the longest child", _SELF + '''
def slowest_on_critical_path(spans):
    kids = _children(spans)
    win = _windows(spans, kids)
    node = next(s for s in spans if s.parent_id is None)
    chain = [node]
    while kids.get(node.span_id):
        node = max(kids[node.span_id], key=lambda c: c.duration_s)
        chain.append(node)
    return max(chain, key=lambda s: _self_time(s, kids, win)).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: only the last child at each level", _SELF + '''
def slowest_on_critical_path(spans):
    kids = _children(spans)
    win = _windows(spans, kids)
    node = next(s for s in spans if s.parent_id is None)
    chain = [node]
    while kids.get(node.span_id):
        node = max(kids[node.span_id], key=lambda c: c.end_s)
        chain.append(node)
    return max(chain, key=lambda s: _self_time(s, kids, win)).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: self time minus the sum of children", _SELF + '''
def slowest_on_critical_path(spans):
    kids = _children(spans)
    win = _windows(spans, kids)

    def self_time(s):
        lo, hi = win[s.span_id]
        return (hi - lo) - sum(win[c.span_id][1] - win[c.span_id][0]
                               for c in kids.get(s.span_id, []) if c.span_id in win)
    return max(_path(spans, kids, win), key=self_time).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: strict < skips back-to-back calls", _SELF + '''
def slowest_on_critical_path(spans):
    kids = _children(spans)
    win = _windows(spans, kids)
    return max(_path(spans, kids, win, strict=True),
               key=lambda s: _self_time(s, kids, win)).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: the longest span off the path", _SELF + '''
def slowest_on_critical_path(spans):
    kids = _children(spans)
    on_path = {s.span_id for s in _path(spans, kids, _windows(spans, kids))}
    root = next(s for s in spans if s.parent_id is None)
    return max((s for s in spans if s.span_id not in on_path),
               key=lambda s: s.duration_s, default=root).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: returns the span's name", _SELF + '''
def slowest_on_critical_path(spans):
    kids = _children(spans)
    win = _windows(spans, kids)
    return max(_path(spans, kids, win), key=lambda s: _self_time(s, kids, win)).name
'''),
    ("07.slowest_on_critical_path", "critical path: returns the span, not its id", _SELF + '''
def slowest_on_critical_path(spans):
    kids = _children(spans)
    win = _windows(spans, kids)
    return max(_path(spans, kids, win), key=lambda s: _self_time(s, kids, win))
'''),
    ("07.slowest_on_critical_path", "critical path: walks into the longest finished child",
     _SELF + '''
def slowest_on_critical_path(spans):
    kids = _children(spans)
    win = _windows(spans, kids)
    on_path = _path(spans, kids, win, pick=lambda done: max(done, key=lambda c: c.duration_s))
    return max(on_path, key=lambda s: _self_time(s, kids, win)).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: ranks by time on the path", '''
from labkit.obs.critical_path import critical_path

def slowest_on_critical_path(spans):
    path = critical_path(spans)
    return max(path.critical_s, key=path.critical_s.get)
'''),
    ("07.slowest_on_critical_path", "critical path: the root left out", _SELF + '''
def slowest_on_critical_path(spans):
    kids = _children(spans)
    win = _windows(spans, kids)
    on_path = [s for s in _path(spans, kids, win) if s.parent_id is not None]
    return max(on_path, key=lambda s: _self_time(s, kids, win)).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: children not clipped to the parent",
     _OLD + _SELF + '''
def slowest_on_critical_path(spans):
    kids = _children(spans)
    return max(_raw_path(spans, kids), key=lambda s: _old_self(s, kids)).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: a child that outlived its parent skipped",
     _OLD + _SELF + '''
def slowest_on_critical_path(spans):
    kids = _children(spans)
    win = _windows(spans, kids)
    return max(_raw_path(spans, kids), key=lambda s: _self_time(s, kids, win)).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: the longest span, often the root", '''
def slowest_on_critical_path(spans):
    return max(spans, key=lambda s: s.duration_s).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: spans[0] taken as the root", _SELF + '''
def slowest_on_critical_path(spans):
    kids = _children(spans)
    root = spans[0]                      # assumes the root comes first
    win = _windows(spans, kids, root)
    on_path = _path(spans, kids, win, root=root)
    return max(on_path, key=lambda s: _self_time(s, kids, win)).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: a detached child clipped, not left out",
     _HELPERS + '''
def slowest_on_critical_path(spans):
    kids = _kids(spans)
    root = next(s for s in spans if s.parent_id is None)
    win, todo = {root.span_id: (root.start_s, root.end_s)}, [root]
    while todo:
        s = todo.pop()
        lo, hi = win[s.span_id]
        for c in kids.get(s.span_id, []):
            win[c.span_id] = (max(c.start_s, lo), min(c.end_s, hi))
            todo.append(c)
    def self_t(s):
        lo, hi = win[s.span_id]
        return (hi - lo) - _union(win[c.span_id] for c in kids.get(s.span_id, []))
    path = []
    def walk(s):
        path.append(s)
        t = win[s.span_id][1]
        for c in sorted(kids.get(s.span_id, []), key=lambda c: -win[c.span_id][1]):
            if win[c.span_id][1] <= t:
                walk(c)
                t = win[c.span_id][0]
    walk(root)
    return max(path, key=self_t).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: the longest span taken as the root",
     _HELPERS + '''
def slowest_on_critical_path(spans):
    kids = _kids(spans)
    root = max(spans, key=lambda s: s.duration_s)
    win, todo = {root.span_id: (root.start_s, root.end_s)}, [root]
    while todo:
        s = todo.pop()
        lo, hi = win[s.span_id]
        for c in kids.get(s.span_id, []):
            if c.start_s < hi:
                win[c.span_id] = (max(c.start_s, lo), min(c.end_s, hi))
                todo.append(c)
    kids = {p: [c for c in cs if c.span_id in win] for p, cs in kids.items()}
    def self_t(s):
        lo, hi = win[s.span_id]
        return (hi - lo) - _union(win[c.span_id] for c in kids.get(s.span_id, []))
    path = []
    def walk(s):
        path.append(s)
        t = win[s.span_id][1]
        for c in sorted(kids.get(s.span_id, []), key=lambda c: -win[c.span_id][1]):
            if win[c.span_id][1] <= t:
                walk(c)
                t = win[c.span_id][0]
    walk(root)
    return max(path, key=self_t).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: self time minus every span below it",
     _HELPERS + '''
def slowest_on_critical_path(spans):
    kids = _kids(spans)
    root = next(s for s in spans if s.parent_id is None)
    win, todo = {root.span_id: (root.start_s, root.end_s)}, [root]
    while todo:
        s = todo.pop()
        lo, hi = win[s.span_id]
        for c in kids.get(s.span_id, []):
            if c.start_s < hi:
                win[c.span_id] = (max(c.start_s, lo), min(c.end_s, hi))
                todo.append(c)
    kids = {p: [c for c in cs if c.span_id in win] for p, cs in kids.items()}
    def below(s):
        for c in kids.get(s.span_id, []):
            yield c
            yield from below(c)
    def self_t(s):           # my time minus the time of everything below me
        lo, hi = win[s.span_id]
        return (hi - lo) - sum(win[d.span_id][1] - win[d.span_id][0] for d in below(s))
    path = []
    def walk(s):
        path.append(s)
        t = win[s.span_id][1]
        for c in sorted(kids.get(s.span_id, []), key=lambda c: -win[c.span_id][1]):
            if win[c.span_id][1] <= t:
                walk(c)
                t = win[c.span_id][0]
    walk(root)
    return max(path, key=self_t).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: clipped to the parent's own times, one pass",
     _HELPERS + '''
def slowest_on_critical_path(spans):
    kids = _kids(spans)
    root = next(s for s in spans if s.parent_id is None)
    by_id = {s.span_id: s for s in spans}
    win = {}
    for s in spans:          # clip to the parent's OWN times (one pass, in the given order)
        if s.parent_id is None:
            win[s.span_id] = (s.start_s, s.end_s)
        else:
            p = by_id[s.parent_id]
            if s.start_s < p.end_s:
                win[s.span_id] = (max(s.start_s, p.start_s), min(s.end_s, p.end_s))
    kids = {p: [c for c in cs if c.span_id in win] for p, cs in kids.items()}
    def self_t(s):
        lo, hi = win[s.span_id]
        return (hi - lo) - _union(win[c.span_id] for c in kids.get(s.span_id, []))
    path = []
    def walk(s):
        path.append(s)
        t = win[s.span_id][1]
        for c in sorted(kids.get(s.span_id, []), key=lambda c: -win[c.span_id][1]):
            if win[c.span_id][1] <= t:
                walk(c)
                t = win[c.span_id][0]
    walk(root)
    return max(path, key=self_t).span_id
'''),
]

WHY = {
    "critical path: longest span by total duration": "by total duration",
    "critical path: longest non-root span of the trace": "by total duration",
    "critical path: largest self time, path ignored": "it is not on the critical path",
    "critical path: follows the longest child": "following, at each span, its longest child",
    "critical path: only the last child at each level": "following only the child that "
                                                        "finished last",
    "critical path: self time minus the sum of children": "subtracted twice",
    "critical path: strict < skips back-to-back calls": "back to back",
    "critical path: the longest span off the path": "NOT on the critical path",
    "critical path: returns the span's name": "a span's name",
    "critical path: returns the span, not its id": "return its span_id",
    "critical path: walks into the longest finished child": "the LONGEST one",
    "critical path: ranks by time on the path": "the most time on the critical path",
    "critical path: the root left out": "never returns the root",
    "critical path: children not clipped to the parent": "does not clip children",
    "critical path: a child that outlived its parent skipped": "never enters a child that ran "
                                                               "on after its parent ended",
    "critical path: the longest span, often the root": "a span's duration includes the time",
    "critical path: spans[0] taken as the root": "which is not the root here",
    "critical path: a detached child clipped, not left out": "is not clipped, it is left out",
    "critical path: the longest span taken as the root": "your walk starts from the longest span",
    "critical path: self time minus every span below it": "subtracts the durations of every "
                                                           "span below it",
    "critical path: clipped to the parent's own times, one pass": "not to the parent's clipped "
                                                                   "window",
}

RIGHT = [
    ("07.slowest_on_critical_path", "critical path: labkit's critical_path and self_times", '''
from labkit.obs.critical_path import critical_path, self_times

def slowest_on_critical_path(spans):
    path, selfs = critical_path(spans), self_times(spans)
    return max(path.span_ids, key=lambda sid: selfs[sid])
'''),
    ("07.slowest_on_critical_path", "critical path: sweep of 0.05 ms time slices", '''
def slowest_on_critical_path(spans):
    by_parent = {}
    for s in spans:
        by_parent.setdefault(s.parent_id, []).append(s)
    root = next(s for s in spans if s.parent_id is None)
    # clip each span to its parent (a child that started after its parent ended: dropped)
    win, todo = {root.span_id: (root.start_s, root.end_s)}, [root]
    while todo:
        s = todo.pop()
        for c in by_parent.get(s.span_id, []):
            if c.start_s < win[s.span_id][1]:
                win[c.span_id] = (max(c.start_s, win[s.span_id][0]),
                                  min(c.end_s, win[s.span_id][1]))
                todo.append(c)
    critical, stack = set(), [(root, win[root.span_id][1])]
    while stack:
        span, t = stack.pop()
        critical.add(span.span_id)
        done = sorted((c for c in by_parent.get(span.span_id, [])
                       if c.span_id in win and win[c.span_id][1] <= t),
                      key=lambda c: win[c.span_id][1])
        if done:
            child = done[-1]
            stack.append((span, win[child.span_id][0]))
            stack.append((child, win[child.span_id][1]))

    def self_time(span):                 # count the 0.05 ms slices no child covers
        lo, hi = win[span.span_id]
        ticks, step, t = 0, 0.00005, lo + 0.000025
        while t < hi:
            if not any(win[c.span_id][0] <= t < win[c.span_id][1]
                       for c in by_parent.get(span.span_id, []) if c.span_id in win):
                ticks += 1
            t += step
        return ticks
    return max((s for s in spans if s.span_id in critical), key=self_time).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: clipped copies, then the plain walk", '''
from dataclasses import replace

def slowest_on_critical_path(spans):
    kids = {}
    for s in spans:
        kids.setdefault(s.parent_id, []).append(s)
    root = next(s for s in spans if s.parent_id is None)
    clipped, todo = {root.span_id: root}, [root]
    while todo:                          # Jaeger's sanitizing: copies, the input is untouched
        p = clipped[todo.pop().span_id]
        for c in kids.get(p.span_id, []):
            if c.start_s >= p.end_s:
                continue                 # started after its parent ended: nobody waited
            clipped[c.span_id] = replace(c, start_s=max(c.start_s, p.start_s),
                                         end_s=min(c.end_s, p.end_s))
            todo.append(c)
    ch = {}
    for s in clipped.values():
        ch.setdefault(s.parent_id, []).append(s)

    def self_time(s):
        covered, a0, b0 = 0.0, None, None
        for c in sorted(ch.get(s.span_id, []), key=lambda c: c.start_s):
            if b0 is None or c.start_s > b0:
                covered += (b0 - a0) if b0 is not None else 0.0
                a0, b0 = c.start_s, c.end_s
            else:
                b0 = max(b0, c.end_s)
        covered += (b0 - a0) if b0 is not None else 0.0
        return s.end_s - s.start_s - covered

    best, stack = clipped[root.span_id], [clipped[root.span_id]]
    while stack:
        s = stack.pop()
        best = max(best, s, key=self_time)
        t = s.end_s
        for c in sorted(ch.get(s.span_id, []), key=lambda c: -c.end_s):
            if c.end_s <= t:
                stack.append(c)
                t = c.start_s
    return best.span_id
'''),
]
