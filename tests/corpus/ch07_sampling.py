"""Chapter 07, exercise 3 · keep_trace: answers a learner writes (see tests/wrong_answers.py
for the format). The first WRONG entry is the notebook's."""

WRONG = [
    ("07.keep_trace", "keep_trace: errors sampled like the rest", '''
def keep_trace(spans, slow_ms, spans_left):
    duration_ms = (max(s.end_s for s in spans) - min(s.start_s for s in spans)) * 1000
    if duration_ms > slow_ms:
        return True
    return len(spans) <= spans_left
'''),
    ("07.keep_trace", "keep_trace: the tutorial's error tag", '''
def keep_trace(spans, slow_ms, spans_left):
    if any(s.attributes.get("error") == "true" for s in spans):
        return True
    duration_ms = (max(s.end_s for s in spans) - min(s.start_s for s in spans)) * 1000
    if duration_ms > slow_ms:
        return True
    return len(spans) <= spans_left
'''),
    ("07.keep_trace", "keep_trace: the root's status only", '''
def keep_trace(spans, slow_ms, spans_left):
    root = next(s for s in spans if s.parent_id is None)
    if root.status == "error":
        return True
    duration_ms = (max(s.end_s for s in spans) - min(s.start_s for s in spans)) * 1000
    if duration_ms > slow_ms:
        return True
    return len(spans) <= spans_left
'''),
    ("07.keep_trace", "keep_trace: the root's duration as the trace's", '''
def keep_trace(spans, slow_ms, spans_left):
    if any(s.status == "error" for s in spans):
        return True
    root = next(s for s in spans if s.parent_id is None)
    if root.duration_s * 1000 > slow_ms:
        return True
    return len(spans) <= spans_left
'''),
    ("07.keep_trace", "keep_trace: the sum of the span durations", '''
def keep_trace(spans, slow_ms, spans_left):
    if any(s.status == "error" for s in spans):
        return True
    if sum(s.duration_s for s in spans) * 1000 > slow_ms:
        return True
    return len(spans) <= spans_left
'''),
    ("07.keep_trace", "keep_trace: seconds compared with milliseconds", '''
def keep_trace(spans, slow_ms, spans_left):
    if any(s.status == "error" for s in spans):
        return True
    if max(s.end_s for s in spans) - min(s.start_s for s in spans) > slow_ms:
        return True
    return len(spans) <= spans_left
'''),
    ("07.keep_trace", "keep_trace: no budget", '''
def keep_trace(spans, slow_ms, spans_left):
    return True
'''),
    ("07.keep_trace", "keep_trace: any budget left is enough", '''
def keep_trace(spans, slow_ms, spans_left):
    if any(s.status == "error" for s in spans):
        return True
    duration_ms = (max(s.end_s for s in spans) - min(s.start_s for s in spans)) * 1000
    if duration_ms > slow_ms:
        return True
    return spans_left > 0
'''),
    ("07.keep_trace", "keep_trace: < instead of <= for the budget", '''
def keep_trace(spans, slow_ms, spans_left):
    if any(s.status == "error" for s in spans):
        return True
    duration_ms = (max(s.end_s for s in spans) - min(s.start_s for s in spans)) * 1000
    if duration_ms > slow_ms:
        return True
    return len(spans) < spans_left
'''),
    ("07.keep_trace", "keep_trace: the error looked up in the attributes", '''
def keep_trace(spans, slow_ms, spans_left):
    if any(s.attributes.get("error") for s in spans):
        return True
    duration_ms = (max(s.end_s for s in spans) - min(s.start_s for s in spans)) * 1000
    if duration_ms > slow_ms:
        return True
    return len(spans) <= spans_left
'''),
    ("07.keep_trace", "keep_trace: the budget asked before the slow test", '''
def keep_trace(spans, slow_ms, spans_left):
    if any(s.status == "error" for s in spans):
        return True
    if len(spans) > spans_left:
        return False
    return True
'''),
    ("07.keep_trace", "keep_trace: the average span duration", '''
def keep_trace(spans, slow_ms, spans_left):
    if any(s.status == "error" for s in spans):
        return True
    if sum(s.duration_s for s in spans) / len(spans) * 1000 > slow_ms:
        return True
    return len(spans) <= spans_left
'''),
    ("07.keep_trace", "keep_trace: the longest single span", '''
def keep_trace(spans, slow_ms, spans_left):
    if any(s.status == "error" for s in spans):
        return True
    if max(s.duration_s for s in spans) * 1000 > slow_ms:
        return True
    return len(spans) <= spans_left
'''),
    ("07.keep_trace", "keep_trace: sorted in place, end of the last one to start", '''
def keep_trace(spans, slow_ms, spans_left):
    spans.sort(key=lambda s: s.start_s)
    if any(s.status == "error" for s in spans):
        return True
    if (spans[-1].end_s - spans[0].start_s) * 1000 > slow_ms:
        return True
    return len(spans) <= spans_left
'''),
    ("07.keep_trace", "keep_trace: http.status_code >= 500 as the error test", '''
def keep_trace(spans, slow_ms, spans_left):
    if any(s.attributes.get("http.status_code", 200) >= 500 for s in spans):
        return True
    duration_ms = (max(s.end_s for s in spans) - min(s.start_s for s in spans)) * 1000
    if duration_ms > slow_ms:
        return True
    return len(spans) <= spans_left
'''),
    ("07.keep_trace", "keep_trace: min(end_s) typed for min(start_s)", '''
def keep_trace(spans, slow_ms, spans_left):
    if any(s.status == "error" for s in spans):
        return True
    duration_ms = (max(s.end_s for s in spans) - min(s.end_s for s in spans)) * 1000
    if duration_ms > slow_ms:
        return True
    return len(spans) <= spans_left
'''),
    ("07.keep_trace", "keep_trace: spans[-1].end_s - spans[0].start_s, unsorted", '''
def keep_trace(spans, slow_ms, spans_left):
    if any(s.status == "error" for s in spans):
        return True
    if (spans[-1].end_s - spans[0].start_s) * 1000 > slow_ms:
        return True
    return len(spans) <= spans_left
'''),
]

WHY = {
    "keep_trace: errors sampled like the rest": "errors are what you keep traces for",
    "keep_trace: the tutorial's error tag": 's.status == "error" on every span',
    "keep_trace: the error looked up in the attributes": 'has status "error" and the trace '
                                                         'was dropped',
    "keep_trace: the budget asked before the slow test": "keep a slow trace whatever the budget",
    "keep_trace: the average span duration": "whatever the budget",
    "keep_trace: the longest single span": "you timed the longest single span",
    "keep_trace: sorted in place, end of the last one to start": "the span that started last",
    "keep_trace: the root's status only": "a span deeper in the tree",
    "keep_trace: the root's duration as the trace's": "you timed the root span only",
    "keep_trace: the sum of the span durations": "you added up the spans' durations",
    "keep_trace: seconds compared with milliseconds": "multiply by 1000 before comparing",
    "keep_trace: no budget": "does not fit in the budget",
    "keep_trace: any budget left is enough": "the budget counts spans",
    "keep_trace: < instead of <= for the budget": "fits exactly",
    "keep_trace: http.status_code >= 500 as the error test": 'test s.status == "error" on '
                                                             'every span',
    "keep_trace: min(end_s) typed for min(start_s)": "latest end_s minus earliest start_s, "
                                                     "times 1000",
    "keep_trace: spans[-1].end_s - spans[0].start_s, unsorted": "the spans come in any order",
}

RIGHT = [
    ("07.keep_trace", "keep_trace: one boolean expression with numpy", '''
import numpy as np

def keep_trace(spans, slow_ms, spans_left):
    starts = np.array([s.start_s for s in spans])
    ends = np.array([s.end_s for s in spans])
    failed = np.array([s.status == "error" for s in spans])
    return failed.any() or (ends.max() - starts.min()) * 1e3 > slow_ms or len(spans) <= spans_left
'''),
    ("07.keep_trace", "keep_trace: labkit's decide, then the budget", '''
from labkit.obs.sampling import decide

def keep_trace(spans, slow_ms, spans_left):
    d = decide(spans, slow_ms=slow_ms, base_rate=0.0)
    return 1 if d.keep or len(spans) <= spans_left else 0
'''),
]
