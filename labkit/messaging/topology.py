"""Declaring exchanges, queues and bindings on the embedded broker (part of `Broker`).

The AMQP rules for topology: a re-declare must match exactly (else PreconditionFailed and the
channel closes), arguments are checked (`model.check_arguments`), exclusive queues belong to
one connection, the default exchange cannot be bound. Chapter 02.
"""
from __future__ import annotations

from labkit.messaging import routing
from labkit.messaging.api import NotFound, PreconditionFailed, ResourceLocked
from labkit.messaging.model import ChannelState, ExchangeState, QueueState, check_arguments

__all__ = ["Topology"]


class Topology:
    """Mixed into `labkit.messaging.broker.Broker`: declarations and the lookups that refuse
    (NotFound, ResourceLocked) with the channel closed, as AMQP does."""

    def declare_exchange(self, ch: ChannelState, name: str, type_: str, durable: bool,
                         auto_delete: bool) -> None:
        self._open(ch)
        if type_ not in routing.EXCHANGE_TYPES:
            self._fail(ch, PreconditionFailed(
                f"exchange type must be one of {list(routing.EXCHANGE_TYPES)}, got {type_!r}"))
        old = self.exchanges.get(name)
        if old is None:
            self.exchanges[name] = ExchangeState(name, type_, durable, auto_delete)
        elif (old.type, old.durable, old.auto_delete) != (type_, durable, auto_delete):
            self._fail(ch, PreconditionFailed(
                f"PRECONDITION_FAILED - exchange {name!r} exists as type={old.type!r} "
                f"durable={old.durable} auto_delete={old.auto_delete}; cannot re-declare it as "
                f"type={type_!r} durable={durable} auto_delete={auto_delete}"))

    def delete_exchange(self, ch: ChannelState, name: str) -> None:
        self._open(ch)
        if name == "" or name.startswith("amq."):
            self._fail(ch, PreconditionFailed(f"the built-in exchange {name!r} cannot be deleted"))
        self.exchanges.pop(name, None)

    def declare_queue(self, ch: ChannelState, name: str, durable: bool, exclusive: bool,
                      auto_delete: bool, arguments: dict | None) -> tuple[str, int, int]:
        """Create the queue or check it matches; returns (name, ready count, consumers)."""
        self._open(ch)
        args = self._check_arguments(ch, dict(arguments or {}), durable, exclusive, auto_delete)
        name = name or f"amq.gen-{next(self._ids)}"
        q = self.queues.get(name)
        if q is None:
            q = QueueState(name, durable, exclusive, auto_delete, args, ch.owner)
            self.queues[name] = q
        else:
            self._check_owner(ch, q)
            new = {"durable": durable, "exclusive": exclusive, "auto_delete": auto_delete,
                   "arguments": args}
            for key, value in new.items():
                if q.flags()[key] != value:
                    self._fail(ch, PreconditionFailed(
                        f"PRECONDITION_FAILED - inequivalent {key} for queue {name!r}: "
                        f"received {value!r} but current is {q.flags()[key]!r}"))
        return name, len(q.ready), len(q.consumers)

    def _check_arguments(self, ch, args, durable, exclusive, auto_delete) -> dict:
        try:
            return check_arguments(args, durable, exclusive, auto_delete)
        except ValueError as e:
            self._fail(ch, PreconditionFailed(f"PRECONDITION_FAILED - invalid arg: {e}"))

    def delete_queue(self, ch: ChannelState, name: str) -> int:
        self._open(ch)
        q = self.queues.get(name)
        if q is None:
            return 0
        self._check_owner(ch, q)
        return self._drop_queue(q)

    def purge_queue(self, ch: ChannelState, name: str) -> int:
        q = self._queue(ch, name)
        n = len(q.ready)
        for _, m in q.ready:
            self.journal.record("dropped", m.message_id, q.name, "purged")
        q.ready.clear()
        return n

    def bind(self, ch: ChannelState, queue: str, exchange: str, routing_key: str,
             unbind: bool = False) -> None:
        q = self._queue(ch, queue)
        ex = self._exchange(ch, exchange)
        if exchange == "":
            self._fail(ch, PreconditionFailed("the default exchange cannot be bound or unbound"))
        entry = (q.name, routing_key)
        if unbind:
            if entry in ex.bindings:
                ex.bindings.remove(entry)
        elif entry not in ex.bindings:
            ex.bindings.append(entry)

    def _queue(self, ch: ChannelState, name: str) -> QueueState:
        self._open(ch)
        q = self.queues.get(name)
        if q is None:
            self._fail(ch, NotFound(f"NOT_FOUND - no queue {name!r}"))
        return q

    def _exchange(self, ch: ChannelState, name: str) -> ExchangeState:
        ex = self.exchanges.get(name)
        if ex is None:
            self._fail(ch, NotFound(f"NOT_FOUND - no exchange {name!r}"))
        return ex

    def _check_owner(self, ch: ChannelState, q: QueueState) -> None:
        if q.exclusive and q.owner != ch.owner:
            self._fail(ch, ResourceLocked(
                f"RESOURCE_LOCKED - queue {q.name!r} is exclusive to another connection"))
