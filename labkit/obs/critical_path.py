"""One trace as a tree of spans, each span's self time, and the critical path (chapter 07).

A trace is a parcel's journey; its spans are the depots' scans, and each scan names the scan
before it (its parent). `build_tree` turns one trace's `SpanRecord`s (labkit/obs/tracing.py)
back into that tree; `critical_path` answers "which steps made the request take as long as it
did?"; `self_times` says how much of each span was spent in the span itself.

Definitions (the ones Jaeger's critical path and Uber's CRISP use):

- **Window** of a span: its start to its end, clipped to its parent's (clipped) window, as
  Jaeger's critical path does (``sanitizeOverFlowingChildren``). A child that outlived its
  parent (a consumer still running when the producer returned) counts only up to the parent's
  end; a child that starts at or after its parent's end (or ends before it starts) is
  *detached* (``after_parent``), with its whole subtree: an empty window, the caller of the
  root did not wait for it. Detached spans are still in the tree, drawn on the waterfall, and
  ``TraceTree.end_s`` (the latest end of any span) shows how long the trace ran in total.
- **Self time** of a span: the part of its window covered by none of its children's windows
  (overlapping children counted once, not subtracted twice). It is the time the span's own
  code ran (or waited on something that has no span). Detached spans have none.
- **Critical path**: the chain of span segments that determined the root's end-to-end latency.
  Walk backwards from the root's end, time ``t = root.end``. At a span, among its children
  whose window ended at or before ``t``, take the one that ended last (the last finishing
  child, LFC: the one the span was waiting for); the span itself is critical from that child's
  end to ``t``; walk into the child (with ``t = child.end``); when back, continue in the span
  with ``t = child.start``, so only a child that had ended by the time the previous one started
  can be next (sequential children are all on the path, parallel ones that finished earlier are
  not: they were waited for by nobody). When no child is left, the span is critical from its
  start to ``t``. Ties (children ending at the same instant): the one that started first.
  A child that outlived its parent ends (clipped) at the parent's end, so it is the child the
  parent finished last and its clipped part is on the path; a detached child never is. Every
  span on the path is covered from its end back to its start, by itself or its descendants,
  so all of an on-path span's self time lies on the critical path.
- **Orphans**: a span whose parent is not among the spans (lost, sampled away, still running)
  is attached to the root with ``orphan=True``, so it is shown and counted, not dropped.

Pure: works on any objects with SpanRecord's fields; no clock, no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SpanNode", "TraceTree", "CriticalPath", "build_tree", "self_times", "critical_path",
           "slowest_on_critical_path"]


@dataclass(eq=False)
class SpanNode:
    """One span in the tree. `start_s`/`end_s` are its window clipped to its parent's (equal to
    the span's own unless it overflowed its parent; empty, at the parent's end, for detached
    async work, which `after_parent` marks); `self_s` is measured in that window."""
    span: object
    depth: int = 0
    children: list = field(default_factory=list)   # SpanNodes, by start time
    orphan: bool = False
    after_parent: bool = False
    start_s: float = 0.0
    end_s: float = 0.0
    self_s: float = 0.0

    @property
    def span_id(self) -> str:
        return self.span.span_id


@dataclass(eq=False)
class TraceTree:
    """The spans of one trace as a tree; `rows()` is the waterfall's order (depth first)."""
    root: SpanNode
    nodes: dict                    # span_id -> SpanNode
    trace_id: str

    @property
    def start_s(self) -> float:
        return min(n.span.start_s for n in self.nodes.values())

    @property
    def end_s(self) -> float:
        """The latest end of any span: later than the root's end when async work outlived it."""
        return max(n.span.end_s for n in self.nodes.values())

    def rows(self) -> list[SpanNode]:
        """Every node, parents before children, children by start time (a waterfall's rows)."""
        out, stack = [], [self.root]
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(node.children))
        return out


@dataclass(frozen=True)
class CriticalPath:
    """`segments`: (span_id, start_s, end_s), in time order, covering the root's window;
    `critical_s`: seconds on the path per span (only spans on the path)."""
    segments: tuple
    critical_s: dict

    @property
    def span_ids(self) -> frozenset:
        return frozenset(self.critical_s)

    def __contains__(self, span_id) -> bool:
        return span_id in self.critical_s


def _check_spans(spans) -> list:
    spans = list(spans)
    if not spans:
        raise ValueError("spans must hold at least one span of a trace, got none")
    trace_ids = {s.trace_id for s in spans}
    if len(trace_ids) > 1:
        raise ValueError(f"spans must all belong to one trace, got {len(trace_ids)} trace ids: "
                         f"{sorted(trace_ids)[:3]}")
    seen = set()
    for s in spans:
        if s.span_id in seen:
            raise ValueError(f"spans must have distinct span ids, {s.span_id!r} appears twice")
        if not s.end_s >= s.start_s:
            raise ValueError(f"span {s.span_id!r} ends before it starts "
                             f"(start_s={s.start_s!r}, end_s={s.end_s!r})")
        seen.add(s.span_id)
    return spans


def build_tree(spans) -> TraceTree:
    """The tree of one trace's spans (any order). The root is the earliest span with no parent
    id (or, if the root itself is missing, the earliest span whose parent is not there); every
    other span without its parent is attached to the root as an orphan. ValueError for no
    spans, spans of several traces, or a span id given twice."""
    spans = _check_spans(spans)
    by_id = {s.span_id: SpanNode(s) for s in spans}
    tops = [n for n in by_id.values() if n.span.parent_id is None]
    missing = [n for n in by_id.values()
               if n.span.parent_id is not None and n.span.parent_id not in by_id]
    key = (lambda n: (n.span.start_s, -n.span.end_s, n.span_id))
    root = min(tops or missing or by_id.values(), key=key)
    for node in by_id.values():
        if node is root:
            continue
        parent = by_id.get(node.span.parent_id)
        if parent is None:
            node.orphan = True
            parent = root
        parent.children.append(node)
    # spans in a parent cycle never reach the root: attach them as orphans too
    reached = {id(n) for n in _preorder(root)}
    for node in by_id.values():
        if id(node) not in reached:
            owner = by_id[node.span.parent_id]
            owner.children.remove(node)
            node.orphan = True
            root.children.append(node)
            reached.update(id(n) for n in _preorder(node))
    _place(root)
    return TraceTree(root, by_id, spans[0].trace_id)


def _preorder(node):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(n.children)


def _place(root: SpanNode) -> None:
    """Depth, clipped window and self time of every node."""
    root.depth, root.start_s, root.end_s = 0, root.span.start_s, root.span.end_s
    for node in _preorder(root):
        node.children.sort(key=lambda c: (c.span.start_s, c.span.end_s, c.span_id))
        for child in node.children:
            child.depth = node.depth + 1
            child.start_s = max(child.span.start_s, node.start_s)
            child.end_s = min(child.span.end_s, node.end_s)
            # outside the parent's window (async work after it returned): detached
            child.after_parent = node.after_parent or child.end_s < child.start_s or (
                child.span.start_s >= node.end_s and child.span.end_s > node.end_s)
            if child.after_parent:
                child.start_s = child.end_s = node.end_s
        node.self_s = _self_time(node)


def union_s(intervals) -> float:
    """The total length covered by (start, end) intervals, overlaps counted once."""
    covered, run_start, run_end = 0.0, None, None
    for a, b in sorted(intervals):
        if run_end is None or a > run_end:
            if run_end is not None:
                covered += run_end - run_start
            run_start, run_end = a, b
        else:
            run_end = max(run_end, b)
    return covered + (run_end - run_start if run_end is not None else 0.0)


def _self_time(node: SpanNode) -> float:
    """The span's window minus the union of its (attached) children's windows."""
    covered = union_s((c.start_s, c.end_s) for c in node.children
                      if not c.after_parent and c.end_s > c.start_s)
    return max(0.0, (node.end_s - node.start_s) - covered)


def _tree(spans_or_tree) -> TraceTree:
    return spans_or_tree if isinstance(spans_or_tree, TraceTree) else build_tree(spans_or_tree)


def self_times(spans_or_tree) -> dict:
    """span_id -> self time in seconds (see the module docstring)."""
    return {sid: n.self_s for sid, n in _tree(spans_or_tree).nodes.items()}


def critical_path(spans_or_tree) -> CriticalPath:
    """The critical path of the root's latency (definition in the module docstring)."""
    tree = _tree(spans_or_tree)
    backwards = []                        # (span_id, start_s, end_s), latest first
    # a frame: [node, t, its attached children by end (latest first, longest first on ties), i]
    stack = [[tree.root, tree.root.end_s, _by_end(tree.root), 0]]
    while stack:
        frame = stack[-1]
        node, t, kids, i = frame
        while i < len(kids) and kids[i].end_s > t:
            i += 1                        # ended after t: ran in parallel with a later step
        if i == len(kids):
            backwards.append((node.span_id, node.start_s, t))
            stack.pop()
            continue
        child = kids[i]
        backwards.append((node.span_id, child.end_s, t))
        frame[1], frame[3] = child.start_s, i + 1
        stack.append([child, child.end_s, _by_end(child), 0])
    segments, critical = [], {}
    for span_id, start_s, end_s in reversed(backwards):
        critical[span_id] = critical.get(span_id, 0.0) + (end_s - start_s)
        if end_s > start_s:
            segments.append((span_id, start_s, end_s))
    return CriticalPath(tuple(segments), critical)


def _by_end(node: SpanNode) -> list:
    kids = [c for c in node.children if not c.after_parent]
    return sorted(kids, key=lambda c: (-c.end_s, c.start_s, c.span_id))


def slowest_on_critical_path(spans_or_tree):
    """The span on the critical path with the largest self time: where the request's time went.
    Ties: the earlier span."""
    tree = _tree(spans_or_tree)
    path = critical_path(tree)
    best = max((tree.nodes[sid] for sid in path.critical_s),
               key=lambda n: (n.self_s, -n.span.start_s))
    return best.span
