"""Exchange routing rules (pure) and the backend switch of `connect`."""
import pytest

from labkit import messaging
from labkit.messaging.routing import matches, topic_matches


@pytest.mark.parametrize("pattern,key,expected", [
    ("a.b", "a.b", True), ("a.b", "a.c", False), ("a.*", "a.b", True), ("a.*", "a", False),
    ("a.*", "a.b.c", False), ("a.#", "a", True), ("a.#", "a.b.c", True), ("#", "", True),
    ("#", "x.y", True), ("#.c", "c", True), ("#.c", "a.b.c", True), ("#.c", "a.b", False),
    ("*.b.#", "a.b", True), ("*.b.#", "b", False), ("a.#.z", "a.z", True),
    ("a.#.z", "a.b.c.z", True), ("*", "", True), ("*", "a.b", False), ("a.#.#", "a", True),
])
def test_topic_patterns(pattern, key, expected):
    assert topic_matches(pattern, key) is expected


def test_direct_and_fanout():
    assert matches("direct", "k", "k") and not matches("direct", "k", "K")
    assert matches("fanout", "ignored", "anything")


def test_an_unreachable_url_gives_one_clear_sentence_without_the_password(run, monkeypatch):
    async def main():
        with pytest.raises(messaging.BrokerUnavailable) as err:
            await messaging.connect("amqp://guest:secret@127.0.0.1:1/", timeout_s=5)
        return str(err.value)
    text = run(main())
    assert "No RabbitMQ answered at amqp://127.0.0.1:1/" in text and "secret" not in text
    assert "labkit.messaging.connect()" in text

    monkeypatch.setenv("LABKIT_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/")

    async def from_env():
        with pytest.raises(messaging.BrokerUnavailable):
            await messaging.connect(timeout_s=5)
        conn = await messaging.connect(broker=messaging.Broker())   # explicit: embedded
        backend = conn.backend
        await conn.close()
        return backend
    assert run(from_env()) == "embedded"
