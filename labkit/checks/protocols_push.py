"""Chapter 03, exercise 3 (notebooks/03_protocols.ipynb): `follow_events`, the part of a
resuming WebSocket client that never repeats and never loses an event. A plain function on
lists of event dicts: drop what was seen before (ids <= last_id, and an id twice in one batch),
return the rest in id order with the new last id, and raise `EventGap` when an id is missing.
The chapter then plugs the learner's function into `ResumingWebSocket(..., follow=...)`.
Inputs (ids, batch sizes, the shuffle, where the hole is) vary per run. Imported at the end of
`labkit.checks.protocols`, so it registers after exercises 1 and 2."""
from __future__ import annotations

import copy

from labkit.protocols.push_client import EventGap, follow_events
from . import Wrong, exercise, plain, run_rng

_STATUSES = ("placed", "paid", "packed", "shipped", "delivered", "cancelled")
_HINT = ("Sort the batch by id; skip an event whose id is <= last_id (seen before); if the next "
         "id is not last_id + 1, `raise EventGap(last_id, event['id'])`; otherwise keep it and "
         "set last_id to its id. Return (kept_events, last_id), and leave the input list alone.")


def _ids(events) -> list:
    return [e.get("id") if isinstance(e, dict) else e for e in events]


class _Case:
    def __init__(self, what: str, events: list, last_id: int, want: list | None, gap=None):
        self.what, self.events, self.last_id, self.want, self.gap = what, events, last_id, want, gap

    @property
    def shown(self) -> str:
        return f"(a batch {self.what}: ids {_ids(self.events)}, last_id={self.last_id})"


def _cases(rng) -> list[_Case]:
    def ev(i):
        return {"id": i, "order": f"order-{rng.randint(1, 9)}", "status": rng.choice(_STATUSES)}
    last = rng.randint(10, 60)
    k, m = rng.randint(2, 4), rng.randint(3, 5)
    ordered = [ev(i) for i in range(last - k + 1, last + m + 1)]
    cases = [_Case("replayed after a reconnect", ordered, last, ordered[k:])]
    last2 = last + m
    fresh = [ev(i) for i in range(last2 + 1, last2 + rng.randint(4, 6) + 1)]
    twice = rng.choice(fresh)
    mixed = fresh + [copy.deepcopy(twice), ev(last2 - rng.randint(0, 2))]
    while [e["id"] for e in mixed] == sorted(e["id"] for e in mixed):
        rng.shuffle(mixed)
    rng.shuffle(mixed)
    while [e["id"] for e in mixed] == sorted(e["id"] for e in mixed):
        rng.shuffle(mixed)
    cases.append(_Case("out of order, with an event twice", mixed, last2, fresh))
    last3 = fresh[-1]["id"]
    cases.append(_Case("with nothing new", [ev(last3 - 1), ev(last3)], last3, []))
    cases.append(_Case("that is empty", [], last3, []))
    skip = rng.randint(2, 3)
    cases.append(_Case("with a hole at the start", [ev(last3 + skip + i) for i in range(3)],
                       last3, None, gap="start"))
    hole = [ev(last3 + 1), ev(last3 + 2), ev(last3 + 3 + rng.randint(1, 2))]
    cases.append(_Case("with a hole in the middle", hole, last3, None, gap="middle"))
    return cases


@exercise("03.follow_events", reference=follow_events, title="Exercise 3 · follow_events",
          hint=_HINT, timeout_s=10.0)
def check_follow_events(impl) -> None:
    rng = run_rng("03.follow_events")
    for case in _cases(rng):
        _judge(impl, case)


def _passes_sorted(impl, case: _Case) -> bool:
    """True if `impl` raises no EventGap when given the same batch sorted by id."""
    try:
        impl(sorted(copy.deepcopy(case.events), key=lambda e: e["id"]), case.last_id)
    except Exception:
        return False
    return True


def _judge(impl, case: _Case) -> None:
    events = copy.deepcopy(case.events)
    where = case.shown
    try:
        got = impl(events, case.last_id)
    except EventGap as err:
        if case.gap:
            _judge_gap(err, case)
            return
        ids = sorted(_ids(case.events))
        repeated = sorted({i for i in ids if ids.count(i) > 1 and i > case.last_id})
        order_only = _ids(case.events) != ids and _passes_sorted(impl, case)
        why = (" (the batch is not in id order: sort it by id first; given the same batch "
               "sorted, your function raises nothing)" if order_only else
               f" (id {repeated[0]} comes twice: a repeat, drop it)" if repeated else "")
        raise Wrong(f"follow_events raised EventGap although no id is missing {where}{why}.",
                    _HINT) from None
    except NotImplementedError:
        raise                                      # the untouched skeleton: evaluate says so
    except Exception as err:
        if case.gap:
            raise Wrong(f"follow_events raised {type(err).__name__} {where}: for a missing id "
                        "raise EventGap(last_id, id) (from labkit.protocols.push_client), so "
                        "the client can tell lost events from a bug.", _HINT) from None
        raise Wrong(f"follow_events raised {type(err).__name__}: {err} {where}.", _HINT) from None
    got = plain(got, "`follow_events` must be a plain `def`: it only looks at a list, it waits "
                     "for nothing.")
    if events != case.events:
        raise Wrong(f"follow_events changed the list it was given {where}: it became ids "
                    f"{_ids(events)} (sorted or emptied in place?). Build a new list "
                    "(sorted(events, ...) makes a copy); the caller may still need its batch.",
                    _HINT)
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise Wrong(f"follow_events returned {got!r} {where}: return a pair "
                    "(new_events, last_id).", _HINT)
    new, last = got
    if case.gap:
        start = case.gap == "start"
        raise Wrong(f"follow_events returned normally although ids are missing {where}"
                    + ("" if start else ": the first new id is right, the hole is in the middle")
                    + ". Raise EventGap(last_id, id) when an id is not last_id + 1"
                    + ("" if start else ", for every event, not only the first") + ".", _HINT)
    if not isinstance(new, (list, tuple)) or not all(isinstance(e, dict) for e in new):
        raise Wrong(f"follow_events returned {new!r} as new_events {where}: return a list of "
                    "the event dicts themselves.", _HINT)
    new = list(new)
    ids, want = _ids(new), _ids(case.want)
    old = [i for i in ids if isinstance(i, int) and i <= case.last_id]
    if old and set(old) == {case.last_id}:
        raise Wrong(f"follow_events kept the event with id == last_id ({case.last_id}) {where}: "
                    "last_id is the last event you already saw, so keep only ids > last_id "
                    "(`<=`, not `<`, when you skip).", _HINT)
    if old:
        raise Wrong(f"follow_events kept events you had already seen (ids {sorted(set(old))}) "
                    f"{where}: after a reconnect the server may send them again; drop every "
                    "event with id <= last_id.", _HINT)
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise Wrong(f"follow_events returned event {twice[0]} twice {where}: an id that comes "
                    "twice in one batch must be kept once.", _HINT)
    if sorted(ids, key=str) == sorted(want, key=str) and ids != want:
        raise Wrong(f"follow_events returned ids {ids} {where}: the right events, but not in "
                    f"id order ({want}). Sort the batch by id (arrival order is not id order).",
                    _HINT)
    if new != case.want:
        raise Wrong(f"follow_events returned ids {ids} {where}; expected {want}.", _HINT)
    if isinstance(last, bool) or last != (want[-1] if want else case.last_id):
        expected = want[-1] if want else case.last_id
        tip = (f"with nothing new, last_id stays {case.last_id}" if not want else
               "the new last_id is the id of the last event returned")
        raise Wrong(f"follow_events returned last_id {last!r} {where}; expected {expected}: "
                    f"{tip}.", _HINT)


def _judge_gap(err: EventGap, case: _Case) -> None:
    """EventGap's arguments as the notebook specifies them: (the last id processed before the
    hole, the id that came instead of last_id + 1), so the client knows what to ask for again."""
    try:
        follow_events(copy.deepcopy(case.events), case.last_id)
    except EventGap as ref:
        want = (ref.last_id, ref.got)
    else:                                          # unreachable: a gap case has a hole
        raise AssertionError(f"no gap in {case.shown}")
    got = (getattr(err, "last_id", None), getattr(err, "got", None))
    if got == want:
        return
    before, instead = want
    said = (f"follow_events raised EventGap({got[0]!r}, {got[1]!r}) {case.shown}; expected "
            f"EventGap({before}, {instead})")
    if got == (instead, before):
        why = (f"the arguments are swapped: first the last id you processed ({before}), then "
               f"the id that came instead of {before + 1} ({instead})")
    elif got == (before + 1, instead):
        why = (f"the first argument is last_id, the last id you processed ({before}), not the "
               f"first missing id ({before + 1})")
    elif got == (case.last_id, instead):
        why = (f"the first argument is the last id processed before the hole: you kept events "
               f"up to {before}, so update last_id as you keep each event")
    elif got[0] == before:
        latest = max(_ids(case.events))
        why = (f"the second argument is the id that came instead of {before + 1}, that is "
               f"{instead}" + (f", not the last id of the batch ({latest})"
                                if got[1] == latest else ""))
    else:
        why = (f"EventGap(last_id, got): last_id is the last id processed before the hole "
               f"({before}), got the id that came instead of last_id + 1 ({instead})")
    raise Wrong(f"{said}: {why}.", _HINT)
