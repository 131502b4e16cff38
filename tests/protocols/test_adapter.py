"""The users interface over REST and gRPC (labkit/protocols/adapter.py): the same client code
runs on both, and every failure looks the same whichever protocol carried the call."""
import pytest

import labkit
from labkit.patterns.errors import ErrorKind, ServiceError
from labkit.protocols.adapter import (GrpcUsers, RestUsers, ServicesShutDown, Unavailable,
                                      UserDirectory)

PROTOCOLS = ("rest", "grpc")


async def _directory(protocol: str, *, timeout_s: float = 2.0):
    """(service, UserDirectory) for `protocol`, both on 127.0.0.1."""
    if protocol == "rest":
        svc = await labkit.start_service("users")
        return svc, RestUsers(svc.url, timeout_s=timeout_s)
    from labkit.protocols.grpc_service import start_grpc_service
    svc = await start_grpc_service("users")
    return svc, GrpcUsers(svc.target, timeout_s=timeout_s)


async def signup_and_look_up(users: UserDirectory) -> list:
    """The caller's code: it never says which protocol it talks."""
    ada = await users.create_user("Ada", "ada@example.com")
    bob = await users.create_user("Bob", "bob@example.com")
    return [ada, bob, await users.get_user(ada["id"]), await users.get_user(bob["id"]),
            await users.get_user(bob["id"] + 100)]


def test_the_same_code_gets_the_same_answers_over_rest_and_grpc(run):
    async def main():
        answers = {}
        try:
            for protocol in PROTOCOLS:
                _, users = await _directory(protocol)
                assert isinstance(users, UserDirectory) and users.protocol == protocol
                async with users:
                    answers[protocol] = await signup_and_look_up(users)
        finally:
            await labkit.shutdown()
        return answers
    answers = run(main())
    assert answers["rest"] == answers["grpc"]
    ada, bob, got_ada, got_bob, missing = answers["rest"]
    assert ada == got_ada == {"id": ada["id"], "name": "Ada", "email": "ada@example.com"}
    assert bob == got_bob and bob["id"] != ada["id"]
    assert missing is None


async def _failure(protocol: str, call, *, timeout_s: float = 2.0, **faults):
    svc, users = await _directory(protocol, timeout_s=timeout_s)
    try:
        await users.create_user("Ada", "ada@example.com")
        svc.faults.set(**faults)
        with pytest.raises(ServiceError) as err:
            await call(users)
        return err.value
    finally:
        await users.close()
        await labkit.shutdown()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_duplicate_is_a_conflict_not_unavailable(run, protocol):
    err = run(_failure(protocol, lambda u: u.create_user("Ada 2", "ada@example.com")))
    assert type(err) is ServiceError and err.kind is ErrorKind.CONFLICT
    assert not err.retryable


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("faults, kind", [
    ({"outage": True}, None),
    ({"error_rate": 1.0, "error_status": 503}, None),
    ({"error_rate": 1.0, "error_status": 429}, ErrorKind.RATE_LIMIT),
    ({"latency_ms": 3000.0}, ErrorKind.TIMEOUT),
], ids=["outage", "503", "429", "too-slow"])
def test_a_service_that_cannot_answer_now_is_one_error_on_both(run, protocol, faults, kind):
    err = run(_failure(protocol, lambda u: u.get_user(1), timeout_s=0.3, **faults))
    assert isinstance(err, Unavailable) and err.protocol == protocol
    assert err.retryable and "users service unavailable" in str(err)
    if kind is not None:
        assert err.kind is kind


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_server_error_is_not_unavailable(run, protocol):
    err = run(_failure(protocol, lambda u: u.get_user(1), error_rate=1.0, error_status=500))
    assert type(err) is ServiceError and err.kind is ErrorKind.INTERNAL


@pytest.mark.parametrize("make", [lambda: RestUsers("http://127.0.0.1:1", timeout_s=1.0),
                                  lambda: GrpcUsers("127.0.0.1:1", timeout_s=1.0)],
                         ids=PROTOCOLS)
def test_nothing_listening_is_unavailable(run, make):
    async def main():
        async with make() as users:
            with pytest.raises(Unavailable) as err:
                await users.get_user(1)
        return err.value
    assert run(main()).kind in (ErrorKind.NETWORK, ErrorKind.TIMEOUT)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_after_shutdown_a_call_fails_at_once_with_a_clear_message(run, protocol):
    async def main():
        _, users = await _directory(protocol)
        await users.create_user("Ada", "ada@example.com")
        await labkit.shutdown()
        try:
            with pytest.raises(ServicesShutDown) as err:
                await users.get_user(1)
        finally:
            await users.close()
        return str(err.value)
    assert "shut down" in run(main())


@pytest.mark.parametrize("cls", [RestUsers, GrpcUsers])
def test_bad_arguments_are_value_errors_naming_them(run, cls):
    with pytest.raises(ValueError, match="base_url|target"):
        cls("nowhere")
    with pytest.raises(ValueError, match="timeout_s"):
        cls("http://127.0.0.1:1" if cls is RestUsers else "127.0.0.1:1", timeout_s=0)

    async def main():
        users = cls("http://127.0.0.1:1" if cls is RestUsers else "127.0.0.1:1")
        try:
            for bad in ("1", 0, True, 1.0):
                with pytest.raises(ValueError, match="user_id"):
                    await users.get_user(bad)
            with pytest.raises(ValueError, match="name"):
                await users.create_user("", "a@example.com")
            with pytest.raises(ValueError, match="email"):
                await users.create_user("Ada", 5)
        finally:
            await users.close()
    run(main())
