"""One small interface to the users, over REST or gRPC: the source tutorial's ProtocolAdapter
redone. Chapter 03.

The tutorial wraps every protocol in ``send(request_dict) -> {'status': ..., 'data': ...}``
and a ``receive()`` that raises NotImplementedError for both of its protocols: the caller still
builds protocol-shaped dicts, checks HTTP-style statuses even for gRPC, and gets a bare
``Exception`` on any failure. Here the interface is what the *caller* needs (`UserDirectory`):

    async def get_user(user_id) -> dict | None      # None: no such user
    async def create_user(name, email) -> dict     # {"id": ..., "name": ..., "email": ...}

and `RestUsers` (labkit's AsyncClient against ``labkit.start_service("users")``) and
`GrpcUsers` (`ShopClient` against ``start_grpc_service("users")``) implement it, so the same
client code runs on both. Failures look the same whichever protocol carried the call:

- not found -> None (404 / NOT_FOUND);
- the service cannot answer now (down, overloaded, too slow: connection errors, timeouts, 429,
  502, 503, 504 / UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED) -> `Unavailable`, a
  `ServiceError` whose `kind` says whether a retry is safe;
- any other failure (a duplicate email: 409 / ALREADY_EXISTS) -> `ServiceError` with its kind;
- a service stopped by ``labkit.shutdown()`` -> `ServicesShutDown`, at once.

Times are seconds (`timeout_s`).
"""
from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

import aiohttp

from labkit._core import validate
from labkit.patterns.errors import ErrorKind, ServiceError, classify
from labkit.services.clients import AsyncClient
from labkit.services.http import ServicesShutDown

__all__ = ["GrpcUsers", "RestUsers", "ServicesShutDown", "Unavailable", "UserDirectory"]

#: The kinds that mean "the service cannot answer now" (try again later, or elsewhere).
UNAVAILABLE_KINDS = frozenset({ErrorKind.NETWORK, ErrorKind.TIMEOUT, ErrorKind.RATE_LIMIT,
                               ErrorKind.UNAVAILABLE, ErrorKind.GATEWAY})


@runtime_checkable
class UserDirectory(Protocol):
    """What the caller needs from the users service, whatever the protocol."""

    async def get_user(self, user_id: int) -> dict | None: ...

    async def create_user(self, name: str, email: str) -> dict: ...

    async def close(self) -> None: ...


class Unavailable(ServiceError):
    """The users service could not answer now; `kind` and `retryable` say more, `protocol`
    ("rest" or "grpc") which transport failed, `__cause__` the original error."""

    def __init__(self, protocol: str, kind: ErrorKind, detail: str, *,
                 status: int | None = None, retry_after_s: float | None = None):
        self.protocol = protocol
        super().__init__(kind, f"users service unavailable over {protocol} ({kind.value}): "
                               f"{detail}", status=status, retry_after_s=retry_after_s)


def _user_id(user_id) -> int:
    return validate.integer("user_id", user_id, 1)


def _name_email(name, email) -> tuple[str, str]:
    for arg, value in (("name", name), ("email", email)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{arg} must be a non-empty string, got {value!r}")
    return name, email


def _user(record: dict) -> dict:
    """The same dict from both protocols: id, name, email."""
    return {"id": int(record["id"]), "name": record["name"], "email": record["email"]}


class _Directory:
    protocol = ""

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    def __repr__(self):
        return f"<{type(self).__name__} {self.where}>"


class RestUsers(_Directory):
    """`UserDirectory` over REST/JSON: GET /users/{id}, POST /users (labkit's AsyncClient).

    `base_url` is the service's URL (or the service itself); `timeout_s` bounds each call.
    """
    protocol = "rest"

    def __init__(self, base_url, *, timeout_s: float = 2.0):
        self._client = AsyncClient(getattr(base_url, "url", base_url), timeout_s=timeout_s,
                                   connect_timeout_s=min(1.0, timeout_s))
        self.where = self._client.base_url

    async def _call(self, method: str, path: str, **kwargs):
        try:
            return await self._client.request(method, path, **kwargs)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as err:
            kind = classify(exc=err)
            raise Unavailable("rest", kind if kind in UNAVAILABLE_KINDS else ErrorKind.NETWORK,
                              f"{type(err).__name__}: {err}") from err

    @staticmethod
    def _failed(reply) -> ServiceError:
        detail = reply.data.get("error", "") if isinstance(reply.data, dict) else ""
        kind = classify(status=reply.status) if 400 <= reply.status <= 599 else ErrorKind.INTERNAL
        retry = reply.headers.get("Retry-After")
        retry_after_s = float(retry) if retry and retry.replace(".", "", 1).isdigit() else None
        if kind in UNAVAILABLE_KINDS:
            return Unavailable("rest", kind, f"HTTP {reply.status} {detail}".strip(),
                               status=reply.status, retry_after_s=retry_after_s)
        return ServiceError(kind, f"HTTP {reply.status}: {detail}" if detail else "",
                            status=reply.status if 100 <= reply.status <= 599 else None)

    async def get_user(self, user_id: int) -> dict | None:
        reply = await self._call("GET", f"/users/{_user_id(user_id)}")
        if reply.status == 404:
            return None
        if reply.status != 200:
            raise self._failed(reply)
        return _user(reply.data)

    async def create_user(self, name: str, email: str) -> dict:
        name, email = _name_email(name, email)
        reply = await self._call("POST", "/users", json={"name": name, "email": email})
        if reply.status not in (200, 201):
            raise self._failed(reply)
        return _user(reply.data)

    async def close(self) -> None:
        await self._client.close()


class GrpcUsers(_Directory):
    """`UserDirectory` over gRPC: Shop.GetUser and Shop.CreateUser (data/shop.proto).

    `target` is "127.0.0.1:PORT" (or the service itself); `timeout_s` is each call's deadline.
    """
    protocol = "grpc"

    def __init__(self, target, *, timeout_s: float = 2.0):
        from labkit.protocols.grpc_service import ShopClient     # grpc only when used
        self._client = ShopClient(target, timeout_s=timeout_s)
        self.where = self._client.target

    async def _call(self, method: str, *args) -> dict:
        from labkit.patterns.errors import GrpcError
        try:
            return await getattr(self._client, method)(*args)
        except GrpcError as err:
            if err.code == "NOT_FOUND" and method == "get_user":
                return None
            if err.kind in UNAVAILABLE_KINDS:
                raise Unavailable("grpc", err.kind, str(err),
                                  retry_after_s=err.retry_after_s) from err
            raise ServiceError(err.kind, str(err)) from err

    async def get_user(self, user_id: int) -> dict | None:
        record = await self._call("get_user", _user_id(user_id))
        return None if record is None else _user(record)

    async def create_user(self, name: str, email: str) -> dict:
        return _user(await self._call("create_user", *_name_email(name, email)))

    async def close(self) -> None:
        await self._client.close()
