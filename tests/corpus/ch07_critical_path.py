"""Chapter 07, exercise 2 · slowest_on_critical_path: answers a learner writes (see
tests/wrong_answers.py for the format). The first WRONG entry is the notebook's."""

_SELF = '''
def _children(spans):
    kids = {}
    for s in spans:
        kids.setdefault(s.parent_id, []).append(s)
    return kids


def _self_time(span, kids):
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


def _path(spans, kids):
    root = next(s for s in spans if s.parent_id is None)
    out = []

    def walk(span):
        out.append(span)
        t = span.end_s
        for c in sorted(kids.get(span.span_id, []), key=lambda c: -c.end_s):
            if c.end_s <= t:
                walk(c)
                t = c.start_s
    walk(root)
    return out
'''

WRONG = [
    ("07.slowest_on_critical_path", "critical path: longest span by total duration", _SELF + '''
def slowest_on_critical_path(spans):
    kids = _children(spans)
    on_path = [s for s in _path(spans, kids) if s.parent_id is not None]
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
    return max(spans, key=lambda s: _self_time(s, kids)).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: follows the longest child", _SELF + '''
def slowest_on_critical_path(spans):
    kids = _children(spans)
    node = next(s for s in spans if s.parent_id is None)
    chain = [node]
    while kids.get(node.span_id):
        node = max(kids[node.span_id], key=lambda c: c.duration_s)
        chain.append(node)
    return max(chain, key=lambda s: _self_time(s, kids)).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: only the last child at each level", _SELF + '''
def slowest_on_critical_path(spans):
    kids = _children(spans)
    node = next(s for s in spans if s.parent_id is None)
    chain = [node]
    while kids.get(node.span_id):
        node = max(kids[node.span_id], key=lambda c: c.end_s)
        chain.append(node)
    return max(chain, key=lambda s: _self_time(s, kids)).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: self time minus the sum of children", _SELF + '''
def slowest_on_critical_path(spans):
    kids = _children(spans)

    def self_time(s):
        return s.duration_s - sum(c.duration_s for c in kids.get(s.span_id, []))
    return max(_path(spans, kids), key=self_time).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: strict < skips back-to-back calls", _SELF + '''
def slowest_on_critical_path(spans):
    kids = _children(spans)
    root = next(s for s in spans if s.parent_id is None)
    on_path = []

    def walk(span):
        on_path.append(span)
        t = span.end_s
        for c in sorted(kids.get(span.span_id, []), key=lambda c: -c.end_s):
            if c.end_s < t:
                walk(c)
                t = c.start_s
    walk(root)
    return max(on_path, key=lambda s: _self_time(s, kids)).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: the longest span off the path", _SELF + '''
def slowest_on_critical_path(spans):
    kids = _children(spans)
    on_path = {s.span_id for s in _path(spans, kids)}
    root = next(s for s in spans if s.parent_id is None)
    return max((s for s in spans if s.span_id not in on_path),
               key=lambda s: s.duration_s, default=root).span_id
'''),
    ("07.slowest_on_critical_path", "critical path: returns the span's name", _SELF + '''
def slowest_on_critical_path(spans):
    kids = _children(spans)
    return max(_path(spans, kids), key=lambda s: _self_time(s, kids)).name
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
}

RIGHT = [
    ("07.slowest_on_critical_path", "critical path: labkit's critical_path, returns the span", '''
from labkit.obs.critical_path import critical_path, self_times

def slowest_on_critical_path(spans):
    path, selfs = critical_path(spans), self_times(spans)
    best = max(path.span_ids, key=lambda sid: selfs[sid])
    return next(s for s in spans if s.span_id == best)
'''),
    ("07.slowest_on_critical_path", "critical path: sweep of 0.1 ms time slices", '''
def slowest_on_critical_path(spans):
    # who is critical in each slice: walk back from the end, in steps of 0.05 ms
    by_parent = {}
    for s in spans:
        by_parent.setdefault(s.parent_id, []).append(s)
    root = next(s for s in spans if s.parent_id is None)
    critical, stack = {}, [(root, root.end_s)]
    while stack:
        span, t = stack.pop()
        done = sorted((c for c in by_parent.get(span.span_id, []) if c.end_s <= t),
                      key=lambda c: c.end_s)
        if done:
            child = done[-1]
            critical[span.span_id] = critical.get(span.span_id, 0) + (t - child.end_s)
            stack.append((span, child.start_s))
            stack.append((child, child.end_s))
        else:
            critical[span.span_id] = critical.get(span.span_id, 0) + (t - span.start_s)
    # every on-path span's self time lies on the path, so rank by self time:
    def self_time(span):
        ticks, step = 0, 0.00005
        t = span.start_s + step / 2
        while t < span.end_s:
            if not any(c.start_s <= t < c.end_s for c in by_parent.get(span.span_id, [])):
                ticks += 1
            t += step
        return ticks
    return max((s for s in spans if s.span_id in critical), key=self_time).span_id
'''),
]
