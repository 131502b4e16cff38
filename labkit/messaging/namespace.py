"""Per-run namespacing of RabbitMQ names for `labkit.broker()` (chapter 02).

A thin wrapper over the aio-pika backend's connection, channels, exchanges and queues: the
server holds `lk-<run id>.kitchen`, the notebook sees and uses `kitchen` everywhere (names,
deliveries, dead-letter arguments, x-death, the journal). Only the calls that carry names are
rewritten; everything else passes straight through. `labkit.messaging.session` makes these.
"""
from __future__ import annotations

from labkit._core import validate
from labkit.messaging.journal import Journal

MAX_NAMES = 10_000           # queues + exchanges one run may declare on RabbitMQ (all deleted)




class _Names:
    """One run's namespace: the learner's `kitchen` is the server's `lk-<run id>.kitchen`."""

    def __init__(self, rid: str):
        self.prefix = f"lk-{rid}."

    def server(self, name):
        if not isinstance(name, str) or not name or name.startswith(("amq.", self.prefix)):
            return name
        return self.prefix + name

    def learner(self, name):
        ours = isinstance(name, str) and name.startswith(self.prefix)
        return name[len(self.prefix):] if ours else name

    def arguments(self, arguments):
        if arguments is None:
            return None
        if not isinstance(arguments, dict):
            raise ValueError(f"arguments must be a dict or None, got {arguments!r}")
        out, dlx = dict(arguments), arguments.get("x-dead-letter-exchange")
        if dlx is not None:
            out["x-dead-letter-exchange"] = self.server(dlx)
            if dlx == "" and "x-dead-letter-routing-key" in out:     # it names a queue
                out["x-dead-letter-routing-key"] = self.server(out["x-dead-letter-routing-key"])
        return out

    def delivery(self, d):
        """The delivery as the learner sees it: names without the prefix, x-death included."""
        if d is None:
            return None
        d.queue, d.exchange = self.learner(d.queue), self.learner(d.exchange)
        d.routing_key, h, bare = self.learner(d.routing_key), d.headers, self.learner
        if isinstance(h.get("x-death"), list):
            h["x-death"] = [{**e, "queue": bare(e.get("queue")),
                             "exchange": bare(e.get("exchange")),
                             "routing-keys": [bare(k) for k in e.get("routing-keys", [])]}
                            if isinstance(e, dict) else e for e in h["x-death"]]
        for key in ("x-first-death-queue", "x-first-death-exchange", "x-last-death-queue",
                    "x-last-death-exchange"):
            if key in h:
                h[key] = bare(h[key])
        return d


class _Journal(Journal):
    """The client's journal, with queue names as the learner knows them."""

    def __init__(self, names: _Names):
        super().__init__()
        self._names = names

    def record(self, kind, message_id, queue="", *args, **kw):
        return super().record(kind, message_id, self._names.learner(queue), *args, **kw)


class _Proxy:
    """An amqp backend object in a run's namespace; what it does not override (is_closed,
    close, set_qos, cancel, status, purge, ...) goes to the backend object unchanged."""

    def __init__(self, raw, names: _Names):
        self._raw, self._names = raw, names

    def __getattr__(self, attr):
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(self._raw, attr)

    def __repr__(self):
        return f"<{type(self).__name__[1:]} {getattr(self, 'name', '')!r} ({self._names.prefix}*)>"


class _Connection(_Proxy):
    """A RabbitMQ connection in this run's namespace (`namespace`: the server-side prefix)."""

    backend, broker = "rabbitmq", None

    def __init__(self, raw, names: _Names, declared: dict):
        super().__init__(raw, names)
        self._declared, self.journal, self.namespace = declared, raw.journal, names.prefix

    async def channel(self, publisher_confirms: bool = True) -> "_Channel":
        return _Channel(self, await self._raw.channel(publisher_confirms))

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self._raw.close()

    def _record(self, kind: str, name: str, *, ours: bool = False) -> None:
        """Remember a declared server name for shutdown (`ours`: server-named, also ours)."""
        if not (ours or name.startswith(self._names.prefix)):
            return                                  # "", amq.*: not this run's to delete
        if (kind, name) not in self._declared and len(self._declared) >= MAX_NAMES:
            raise RuntimeError(f"this run declared {MAX_NAMES} queues and exchanges; delete "
                               "some (queue_delete, exchange_delete) before declaring more")
        self._declared[(kind, name)] = None


class _Channel(_Proxy):
    def __init__(self, connection: _Connection, raw):
        super().__init__(raw, connection._names)
        self.connection = connection
        self.default_exchange = _Exchange(self, raw.default_exchange)

    async def declare_exchange(self, name: str, type: str = "direct", **flags) -> "_Exchange":
        server = self._names.server(validate.text("name", name))
        self.connection._record("exchange", server)
        return _Exchange(self, await self._raw.declare_exchange(server, type, **flags))

    async def declare_queue(self, name: str = "", *, arguments: dict | None = None,
                            **flags) -> "_Queue":
        server = self._names.server(validate.text("name", name))
        if server:
            self.connection._record("queue", server)
        q = await self._raw.declare_queue(server, arguments=self._names.arguments(arguments),
                                          **flags)
        self.connection._record("queue", q.name, ours=True)     # server-named ones too
        return _Queue(self, q)

    async def get_queue(self, name: str) -> "_Queue":
        return _Queue(self, await self._raw.get_queue(self._names.server(validate.text("name", name))))

    async def get_exchange(self, name: str) -> "_Exchange":
        return _Exchange(self, await self._raw.get_exchange(
            self._names.server(validate.text("name", name))))

    async def queue_delete(self, name: str) -> int:
        return await self._delete("queue", self._raw.queue_delete, name)

    async def exchange_delete(self, name: str) -> None:
        await self._delete("exchange", self._raw.exchange_delete, name)

    async def _delete(self, kind, delete, name):
        server = self._names.server(validate.text("name", name))
        result = await delete(server)
        self.connection._declared.pop((kind, server), None)     # gone: not shutdown's to do
        return result


class _Exchange(_Proxy):
    def __init__(self, channel: _Channel, raw):
        super().__init__(raw, channel._names)
        self.channel, self.name = channel, self._names.learner(raw.name)

    async def publish(self, message, routing_key: str, **kw) -> bool:
        """As api's publish; on the default exchange the routing key names a queue."""
        if self._raw.name == "":
            routing_key = self._names.server(validate.text("routing_key", routing_key))
        return await self._raw.publish(message, routing_key, **kw)

    async def delete(self) -> None:
        await self.channel.exchange_delete(self.name)


class _Queue(_Proxy):
    def __init__(self, channel: _Channel, raw):
        super().__init__(raw, channel._names)
        self.channel, self.name = channel, self._names.learner(raw.name)

    def _exchange(self, exchange) -> str:
        name = exchange if isinstance(exchange, str) else getattr(exchange, "name", None)
        return self._names.server(validate.text("exchange", name))

    async def bind(self, exchange, routing_key: str = "") -> None:
        await self._raw.bind(self._exchange(exchange), routing_key)

    async def unbind(self, exchange, routing_key: str = "") -> None:
        await self._raw.unbind(self._exchange(exchange), routing_key)

    async def consume(self, callback, *, no_ack: bool = False) -> str:
        if not callable(callback):
            raise ValueError(f"callback must be an async function, got {callback!r}")

        async def on_message(delivery):
            await callback(self._names.delivery(delivery))
        return await self._raw.consume(on_message, no_ack=no_ack)

    async def get(self, **kw):
        return self._names.delivery(await self._raw.get(**kw))

    async def delete(self) -> int:
        return await self.channel.queue_delete(self.name)
