"""Chapter 04's content negotiation on labkit's HTTP services: Accept with q-values (RFC 9110
§12.5.1), 406, Content-Type and 415, 400 naming the format, Vary, and the error bodies."""
import json

import aiohttp
import msgpack
import pytest

import labkit
from labkit.services import negotiation as neg
from labkit.services.http import start_service

J, M, X = neg.JSON, neg.MSGPACK, neg.X_MSGPACK


# ---- the pure rules ----------------------------------------------------------------------------
@pytest.mark.parametrize("accept,expected", [
    (None, J), ("", J), ("*/*", J),                              # anything: the server's first
    ("application/*", J),
    (M, M), (X, X),                                              # either msgpack name, echoed
    ("application/json;q=0.5, application/msgpack", M),         # higher q wins
    ("application/msgpack;q=0.5, application/json;q=0.5", J),   # tie: JSON first
    ("application/msgpack, application/json", J),               # tie regardless of order
    ("*/*;q=0.1, application/msgpack", M),                       # */* gives JSON only 0.1
    ("application/*;q=0.2, application/json;q=0", M),           # q=0 excludes JSON
    ("application/msgpack;q=0.9, */*;q=1", J),                   # specific range decides msgpack
    ("application/json;q=0, application/*", M),                  # most specific range wins
    ("application/x-msgpack;q=0.3, application/msgpack;q=0.8", M),
    ("text/html, application/json;charset=utf-8;q=0.4", J),     # non-q params ignored
    ("application/json;q=0.5;level=1, application/msgpack;q=0.4", J),   # ext after q ignored
    ("*/json, application/msgpack", M),                         # malformed range skipped
    ("application/json;q=2, application/msgpack;q=0.1", M),    # bad q: the range is skipped
    ("application/json;q=0.1234, application/msgpack;q=0.1", M),
    ("garbage", None),                                         # nothing usable: 406, not JSON
    ("application/msgpack;q=abc", None), ("application/msgpack;q=2", None),   # never unlisted
    ("application/msgpack;q=abc, application/json;q=0.1", J),  # the usable range decides
    (" , ", J),                                                # blank list: as absent
    ("text/html", None), ("application/xml, text/*", None),
    ("application/*;q=0", None), ("*/*;q=0", None),
    ("application/json;q=0, application/msgpack;q=0.000", None),
])
def test_choose_follows_rfc9110(accept, expected):
    assert neg.choose(accept) == expected


def test_acceptable_ranks_best_first_and_parse_keeps_weights():
    assert neg.acceptable("application/json;q=0.2, application/msgpack") == [M, J]
    assert neg.acceptable("application/msgpack;q=0, */*") == [J] == neg.acceptable(J)
    assert neg.acceptable("application/msgpack;q=0") == []        # JSON was never named
    assert neg.parse_accept("Application/JSON ; Q=0.5, */json, text/*;q=1.0") == [
        neg.MediaRange("application", "json", 0.5), neg.MediaRange("text", "*", 1.0)]
    assert len(neg.parse_accept(", ".join(["text/plain"] * 1000))) == neg.MAX_ACCEPT_RANGES


def test_malformed_names_each_skipped_range_and_why():
    assert neg.malformed("application/msgpack;q=abc, */json, application/json, ,") == [
        "'application/msgpack;q=abc' (q='abc' is not a weight from 0 to 1 with at most 3 "
        "decimals)", "'*/json' (not a type/subtype media range)"]
    assert neg.malformed(None) == [] == neg.malformed("application/json;q=0.5")


def test_decode_by_content_type():
    doc = {"name": "Ada", "n": 1}
    assert neg.decode("application/json; charset=utf-8", json.dumps(doc).encode()) == doc
    assert neg.decode("application/problem+json", b"[1]") == [1]
    assert neg.decode(None, b"{}") == {} == neg.decode("application/octet-stream", b"{}")
    assert neg.decode(M, msgpack.packb(doc)) == doc == neg.decode(X, msgpack.packb(doc))
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        with pytest.raises(neg.UnsupportedMediaType, match=ctype):
            neg.decode(ctype, b"{}")
    with pytest.raises(neg.DecodeError, match="json") as e:
        neg.decode(J, b"{not json")
    assert e.value.format == "json"
    with pytest.raises(neg.DecodeError, match="json"):
        neg.decode(J, b"[" * 200_000)                           # too deep: refused, no crash
    bad = [msgpack.packb(doc)[:-2],                             # truncated
           b"\xc1",                                             # a byte msgpack never uses
           b"\xdd\x3b\x9a\xca\x00",                              # claims a 10**9-item array
           msgpack.packb(doc) + b"\x01",                        # trailing bytes
           b"\xa2\xff\xfe"]                                     # a str that is not UTF-8
    for data in bad:
        with pytest.raises(neg.DecodeError, match="msgpack"):
            neg.decode(M, data)


def test_encode_and_bad_media_type():
    assert msgpack.unpackb(neg.encode(X, {"a": 1})) == {"a": 1}
    assert json.loads(neg.encode(J, [1])) == [1]
    with pytest.raises(ValueError, match="media_type"):
        neg.encode("text/plain", {})


# ---- on a running service ----------------------------------------------------------------------
async def _call(s, method, url, accept=None, ctype=None, data=None):
    headers = {k: v for k, v in (("Accept", accept), ("Content-Type", ctype)) if v is not None}
    async with s.request(method, url, headers=headers, data=data) as r:
        raw = await r.read()
        body = (msgpack.unpackb(raw) if r.content_type in (M, X)
                else json.loads(raw) if raw and r.content_type == J else None)
        return r.status, r.headers, body


def _mp(doc):
    return msgpack.packb(doc)


def test_msgpack_round_trip_create_get_put_and_vary(run):
    async def main():
        users = await start_service("users")
        u = users.url + "/users"
        async with aiohttp.ClientSession() as s:
            created = await _call(s, "POST", u, accept=M, ctype=M,
                                  data=_mp({"name": "Ada", "email": "a@x"}))
            got = await _call(s, "GET", u + "/1", accept=M)
            as_json = await _call(s, "GET", u + "/1")
            listed = await _call(s, "GET", u, accept=f"{J};q=0.5, {X}")
            put = await _call(s, "PUT", u + "/1", accept=J, ctype=X,
                              data=_mp({"name": "Ada L", "email": "a@x"}))
            health = await _call(s, "GET", users.url + "/health", accept=M)
        await labkit.shutdown()
        return created, got, as_json, listed, put, health
    created, got, as_json, listed, put, health = run(main())
    ada = {"id": 1, "name": "Ada", "email": "a@x"}
    assert created[0] == 201 and created[1]["Location"] == "/users/1"
    assert created[1]["Content-Type"] == M and created[2] == ada
    assert got[0] == 200 and got[1]["Content-Type"] == M and got[2] == ada
    assert as_json[1]["Content-Type"].startswith(J) and as_json[2] == ada
    assert listed[1]["Content-Type"] == X and listed[2] == [ada]
    assert put[0] == 200 and put[1]["Content-Type"].startswith(J) and put[2]["name"] == "Ada L"
    for answer in (created, got, as_json, listed, put):
        assert answer[1]["Vary"] == "Accept"
    assert health[0] == 200 and "Vary" not in health[1]             # /health is plain JSON


def test_406_lists_what_is_available_and_changes_nothing(run):
    async def main():
        users = await start_service("users")
        u = users.url + "/users"
        async with aiohttp.ClientSession() as s:
            await _call(s, "POST", u, data=json.dumps({"name": "Ada", "email": "a@x"}), ctype=J)
            get = await _call(s, "GET", u + "/1", accept="text/html")
            head = await _call(s, "HEAD", u + "/1", accept="application/json;q=0")
            post = await _call(s, "POST", u, accept="text/csv", ctype=J,
                               data=json.dumps({"name": "B", "email": "b@x"}))
            put = await _call(s, "PUT", u + "/1", accept="application/xml", ctype=J,
                              data=json.dumps({"name": "Z", "email": "z@x"}))
            missing = await _call(s, "GET", u + "/9", accept="text/html")
        items = dict(users.items)
        await labkit.shutdown()
        return get, head, post, put, missing, items
    get, head, post, put, missing, items = run(main())
    for status, headers, body in (get, post, put):
        assert status == 406 and headers["Vary"] == "Accept"
        assert body["available"] == [J, M] and body["status"] == 406
    assert head[0] == 406 and head[2] is None                       # HEAD: same status, no body
    assert items == {1: {"id": 1, "name": "Ada", "email": "a@x"}}    # neither POST nor PUT ran
    assert missing[0] == 404 and missing[1]["Content-Type"].startswith(J)   # errors fall back


def test_415_400_and_errors_in_the_negotiated_format(run):
    async def main():
        users = await start_service("users")
        u = users.url + "/users"
        async with aiohttp.ClientSession() as s:
            r = {
                "no_ctype": await _call(s, "POST", u, data=b'{"name": "A", "email": "e"}'),
                "text": await _call(s, "POST", u, ctype="text/plain", data='{"name": "A"}'),
                "form": await _call(s, "PUT", u + "/1", ctype="application/x-www-form-urlencoded",
                                    data="name=A"),
                "bad_mp": await _call(s, "POST", u, accept=M, ctype=M, data=b"\x82\xa4name"),
                "bad_json": await _call(s, "POST", u, ctype=J, data=b"{nope"),
                "not_map": await _call(s, "POST", u, ctype=M, data=_mp([1, 2])),
                "bytes_keys": await _call(s, "POST", u, ctype=M,
                                          data=msgpack.packb({b"name": "A", b"email": "e"})),
                "missing_mp": await _call(s, "GET", u + "/7", accept=M),
                "missing_x": await _call(s, "GET", u + "/7", accept=X),
            }
        users.faults.set(error_rate=1.0)
        async with aiohttp.ClientSession() as s:
            r["injected"] = await _call(s, "GET", u, accept=M)
        await labkit.shutdown()
        return r
    r = run(main())
    status, headers, body = r["text"]
    assert status == 415 and headers["Accept-Post"] == f"{J}, {M}"
    assert body["supported"] == [J, M] and "text/plain" in body["error"]
    assert r["form"][0] == 415 and "Accept-Post" not in r["form"][1]    # PUT: body lists them
    status, headers, body = r["bad_mp"]
    assert status == 400 and headers["Content-Type"] == M               # error in msgpack
    assert body["error"].startswith("body is not valid MessagePack")
    assert r["bad_json"][0] == 400 and "body is not valid JSON" in r["bad_json"][2]["error"]
    assert r["not_map"][0] == 400 and "MessagePack map" in r["not_map"][2]["error"]
    assert r["bytes_keys"][0] == 400
    assert r["missing_mp"][0] == 404 and r["missing_mp"][2]["error"] == "users 7 not found"
    assert r["missing_x"][1]["Content-Type"] == X
    assert r["no_ctype"][0] == 201                                      # unlabelled: JSON
    status, headers, body = r["injected"]
    assert status >= 500 and headers["Content-Type"] == M and body["status"] == status


def test_value_msgpack_cannot_carry_falls_back_to_json(run):
    async def main():
        users = await start_service("users")
        u = users.url + "/users"
        async with aiohttp.ClientSession() as s:
            big = 2 ** 70                                             # JSON takes it, msgpack not
            users.items[1] = {"id": 1, "name": "Big", "email": big}
            either = await _call(s, "GET", u + "/1", accept=f"{M}, {J};q=0.5")
            only = await _call(s, "GET", u + "/1", accept=M)
        await labkit.shutdown()
        return either, only
    either, only = run(main())
    assert either[0] == 200 and either[1]["Content-Type"].startswith(J)
    assert either[2]["email"] == 2 ** 70
    assert only[0] == 500 and "cannot be encoded" in only[2]["error"]


def test_idempotent_replay_keeps_the_encoding(run):
    async def main():
        users = await start_service("users")
        u = users.url + "/users"
        headers = {"Accept": M, "Content-Type": M, "Idempotency-Key": "k"}
        body = _mp({"name": "Ada", "email": "a@x"})
        out = []
        async with aiohttp.ClientSession() as s:
            for _ in range(2):
                async with s.post(u, headers=headers, data=body) as r:
                    out.append((r.status, r.headers.get("Vary"), r.content_type,
                                msgpack.unpackb(await r.read())))
        await labkit.shutdown()
        return out
    first, again = run(main())
    assert first == again == (201, "Accept", M, {"id": 1, "name": "Ada", "email": "a@x"})


def test_bad_q_is_406_naming_it_and_a_huge_accept_is_a_one_line_400(run, caplog):
    async def main():
        users = await start_service("users")
        u = users.url + "/users"
        async with aiohttp.ClientSession() as s:
            bad_q = await _call(s, "GET", u, accept="application/msgpack;q=abc")
            too_big = await _call(s, "GET", u, accept="x/y;q=0.5, " * 1000)    # 11,000 chars
            after = await _call(s, "GET", u, accept=M)                       # still serving
        await labkit.shutdown()
        return bad_q, too_big, after
    with caplog.at_level("DEBUG", logger="aiohttp.server"):
        bad_q, too_big, after = run(main())
    status, headers, body = bad_q
    assert status == 406 and headers["Content-Type"].startswith(J)
    assert "q='abc' is not a weight" in body["error"] and body["available"] == [J, M]
    assert too_big[0] == 400 and after[0] == 200 and after[2] == []
    server = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert [r.levelname for r in server] == ["WARNING"]
    assert server[0].exc_info is None and "\n" not in server[0].getMessage()
    assert server[0].getMessage().startswith("bad request from 127.0.0.1 answered 400: Got more")
