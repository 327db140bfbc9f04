"""Wire-level behaviour of the hub with a bare websocket client: vsn 1.0.0 and 2.0.0 frames."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from urllib.parse import quote

import aiohttp
import asyncpg
import jwt
import pytest

from daemon.config import HubSettings
from tests.fixtures.hub import RunningHub
from tests.fixtures.hub_clients import TIMEOUT, post_batch, raw_socket, seed_group


def kind3(join_ref: str, ref: str, topic: str, event: str, data: bytes, *, json_: bool) -> bytes:
    """What realtime-js sends for channel.send({type: 'broadcast', ...}) over vsn 2.0.0."""
    parts = [p.encode() for p in (join_ref, ref, topic, event)]
    header = bytes((3, *(len(p) for p in parts), 0, 1 if json_ else 0))
    return header + b"".join(parts) + data


def parse_kind4(frame: bytes) -> tuple[str, str, str, int, bytes]:
    kind, topic_len, event_len, meta_len, encoding = struct.unpack("!5B", frame[:5])
    assert kind == 4
    offset = 5
    topic = frame[offset : offset + topic_len].decode()
    offset += topic_len
    event = frame[offset : offset + event_len].decode()
    offset += event_len
    meta = frame[offset : offset + meta_len].decode()
    offset += meta_len
    return topic, event, meta, encoding, frame[offset:]


async def test_heartbeat_is_answered_with_the_same_ref(hub: RunningHub) -> None:
    async with aiohttp.ClientSession() as session, raw_socket(session, hub, hub.anon_key) as ws:
        await ws.send("phoenix", "heartbeat", {}, None)
        assert await ws.receive() == {
            "topic": "phoenix",
            "event": "phx_reply",
            "ref": None,
            "payload": {"status": "ok", "response": {}},
        }
        await ws.send("phoenix", "heartbeat", {}, "7")
        assert (await ws.receive())["ref"] == "7"


async def test_join_reply_leave_and_close_frames_v1(hub: RunningHub) -> None:
    async with aiohttp.ClientSession() as session, raw_socket(session, hub, hub.anon_key) as ws:
        reply = await ws.join("realtime:room1", hub.anon_key)
        assert reply == {
            "topic": "realtime:room1",
            "event": "phx_reply",
            "ref": "1",
            "payload": {"status": "ok", "response": {"postgres_changes": []}},
        }
        await ws.send("realtime:room1", "phx_leave", {}, "2", "1")
        assert await ws.receive() == {
            "topic": "realtime:room1",
            "event": "phx_reply",
            "ref": "2",
            "payload": {"status": "ok", "response": {}},
        }
        assert await ws.receive() == {
            "topic": "realtime:room1",
            "event": "phx_close",
            "ref": "1",
            "payload": {},
        }
        await ws.send("realtime:room1", "broadcast", {"type": "broadcast"}, "3", "1")
        assert (await ws.receive())["payload"] == {
            "status": "error",
            "response": {"reason": "unmatched topic"},
        }


async def test_join_errors_for_topics_and_unsupported_features(hub: RunningHub) -> None:
    async with aiohttp.ClientSession() as session, raw_socket(session, hub, hub.anon_key) as ws:
        assert (await ws.join("room1", hub.anon_key))["payload"]["response"] == {
            "reason": "unmatched topic"
        }
        assert (await ws.join("realtime:", hub.anon_key))["payload"]["response"] == {
            "reason": "TopicNameRequired: You must provide a topic name"
        }
        await ws.send(
            "realtime:p",
            "phx_join",
            {"config": {"presence": {"enabled": True}}, "access_token": hub.anon_key},
            "9",
            "9",
        )
        reason = (await ws.receive())["payload"]["response"]["reason"]
        assert reason.startswith("UnsupportedFeature: presence is not supported")
        changes = [{"event": "INSERT", "schema": "public", "table": "submissions"}]
        await ws.send(
            "realtime:c",
            "phx_join",
            {"config": {"postgres_changes": changes}, "access_token": hub.anon_key},
            "10",
            "10",
        )
        reason = (await ws.receive())["payload"]["response"]["reason"]
        assert reason.startswith("UnsupportedFeature: postgres_changes is not supported")


@pytest.mark.parametrize(
    ("token_kind", "reason"),
    [
        ("expired", "InvalidJWTToken: Token has expired "),
        ("no_role", "InvalidJWTToken: Fields `role` and `exp` are required in JWT"),
        ("garbage", "MalformedJWT: The token provided is not a valid JWT"),
        ("bad_signature", "JwtSignatureError: Failed to validate JWT signature"),
    ],
)
async def test_join_token_errors(hub: RunningHub, token_kind: str, reason: str) -> None:
    token = {
        "expired": hub.token(ttl_s=-5),
        "no_role": jwt.encode({"exp": 9_999_999_999}, hub.jwt_secret),
        "garbage": "not-a-jwt",
        "bad_signature": hub.token()[:-4] + "AAAA",
    }[token_kind]
    async with aiohttp.ClientSession() as session, raw_socket(session, hub, hub.anon_key) as ws:
        response = (await ws.join("realtime:room1", token))["payload"]
    assert response["status"] == "error"
    assert response["response"]["reason"].startswith(reason)


@pytest.mark.parametrize(
    ("token_kind", "message"),
    [
        # Realtime's access_token handler names these ...
        ("garbage", "The token provided is not a valid JWT"),
        ("no_role", "Fields `role` and `exp` are required in JWT"),
        ("expired", "Token has expired "),  # then the seconds
        # ... and sends `inspect(error)` for the others.
        ("bad_signature", ":signature_error"),
        ("rs256", ":error_generating_signer"),
    ],
)
async def test_refresh_with_a_bad_token_closes_the_channel_with_realtimes_text(
    hub: RunningHub, token_kind: str, message: str
) -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","typ":"JWT"}').rstrip(b"=").decode()
    token = {
        "garbage": "not-a-jwt",
        "no_role": jwt.encode({"exp": 9_999_999_999}, hub.jwt_secret),
        "expired": hub.token(ttl_s=-5),
        "bad_signature": hub.token()[:-4] + "AAAA",
        "rs256": header + "." + hub.token().split(".", 1)[1],
    }[token_kind]
    async with aiohttp.ClientSession() as session, raw_socket(session, hub, hub.anon_key) as ws:
        await ws.join("realtime:room1", hub.anon_key)
        await ws.send("realtime:room1", "access_token", {"access_token": token}, "2", "1")
        system = await ws.receive()
        assert system["event"] == "system"
        text = system["payload"]["message"]
        assert text.startswith(message) if token_kind == "expired" else text == message
        assert (await ws.receive())["event"] == "phx_close"


async def test_private_join_and_broadcast_over_v2(hub: RunningHub, db: asyncpg.Connection) -> None:
    group = await seed_group(db)
    topic = f"realtime:{group.topic()}"
    async with (
        aiohttp.ClientSession() as session,
        raw_socket(session, hub, hub.anon_key, "2.0.0") as ws,
    ):
        assert await ws.join(topic, hub.token(sub=group.teacher), private=True) == [
            "1",
            "1",
            topic,
            "phx_reply",
            {"status": "ok", "response": {"postgres_changes": []}},
        ]
        status, _ = await post_batch(
            session,
            hub,
            [{"topic": group.topic(), "event": "e", "payload": {"a": 1}, "private": True}],
        )
        assert status == 202
        # REST batch messages are Phoenix broadcasts: JSON text even for vsn 2.0.0.
        assert await ws.receive() == [
            None,
            None,
            topic,
            "broadcast",
            {"event": "e", "payload": {"a": 1}, "type": "broadcast"},
        ]
        async with session.post(
            f"{hub.url}/api/broadcast/{group.topic()}/events/single?private=true",
            json={"b": 2},
            headers={"apikey": hub.service_role_key},
        ) as resp:
            assert resp.status == 202
        # REST single messages are user broadcasts: binary kind 4 for vsn 2.0.0.
        topic4, event4, meta, encoding, data = parse_kind4(await ws.receive())
        assert (topic4, event4, meta, encoding) == (topic, "single", "", 1)
        assert json.loads(data) == {"b": 2}


async def test_kind3_push_reaches_v2_as_kind4_and_v1_as_json(hub: RunningHub) -> None:
    topic = "realtime:room:mixed"
    token = hub.anon_key
    async with (
        aiohttp.ClientSession() as session,
        raw_socket(session, hub, token, "2.0.0") as sender,
        raw_socket(session, hub, token, "2.0.0") as v2,
        raw_socket(session, hub, token, "1.0.0") as v1,
    ):
        assert (await sender.join(topic, token, ack=True))[4]["status"] == "ok"
        assert (await v2.join(topic, token))[4]["status"] == "ok"
        assert (await v1.join(topic, token))["payload"]["status"] == "ok"
        await sender.ws.send_bytes(kind3("1", "2", topic, "move", b'{"x":1,"y":[2]}', json_=True))
        assert await sender.receive() == [
            "1",
            "2",
            topic,
            "phx_reply",
            {"status": "ok", "response": {}},
        ]
        assert parse_kind4(await v2.receive()) == (topic, "move", "", 1, b'{"x":1,"y":[2]}')
        assert await v1.receive() == {
            "topic": topic,
            "event": "broadcast",
            "ref": None,
            "payload": {"event": "move", "payload": {"x": 1, "y": [2]}, "type": "broadcast"},
        }
        blob = os.urandom(32)
        await sender.ws.send_bytes(kind3("1", "3", topic, "blob", blob, json_=False))
        await sender.ws.send_bytes(kind3("1", "4", topic, "after", b"{}", json_=True))
        assert (await sender.receive())[1] == "3"
        assert parse_kind4(await v2.receive()) == (topic, "blob", "", 0, blob)
        # vsn 1.0.0 cannot carry binary payloads: the V1 client's next message is the JSON one.
        assert (await v1.receive())["payload"]["event"] == "after"


async def test_v1_client_broadcast_reaches_v2_as_json_text(hub: RunningHub) -> None:
    topic = "realtime:room:json"
    token = hub.anon_key
    async with (
        aiohttp.ClientSession() as session,
        raw_socket(session, hub, token, "1.0.0") as v1,
        raw_socket(session, hub, token, "2.0.0") as v2,
    ):
        await v1.join(topic, token)
        await v2.join(topic, token)
        payload = {"type": "broadcast", "event": "e", "payload": {"k": "v"}}
        await v1.send(topic, "broadcast", payload, "2", "1")
        assert await v2.receive() == [None, None, topic, "broadcast", payload]


@pytest.mark.parametrize("payload", [[1, 2], "text", 7, None])
async def test_a_broadcast_payload_that_is_not_an_object_is_sent_on_and_acked(
    hub: RunningHub, payload: object
) -> None:
    """Realtime publishes whatever the client sent as the broadcast payload, and acks it."""
    async with (
        aiohttp.ClientSession() as session,
        raw_socket(session, hub, hub.anon_key) as sender,
        raw_socket(session, hub, hub.anon_key, "2.0.0") as receiver,
    ):
        await sender.join("realtime:odd", hub.anon_key, ack=True)
        await receiver.join("realtime:odd", hub.anon_key)
        await sender.send("realtime:odd", "broadcast", payload, "2", "1")
        assert await sender.receive() == {
            "topic": "realtime:odd",
            "event": "phx_reply",
            "payload": {"status": "ok", "response": {}},
            "ref": "2",
        }
        assert await receiver.receive() == [None, None, "realtime:odd", "broadcast", payload]


@pytest.mark.parametrize(
    ("vsn", "frame"),
    [
        ("1.0.0", "not json"),
        ("1.0.0", "[1, 2]"),
        ("1.0.0", '{"topic": "phoenix", "event": "heartbeat", "ref": "1"}'),
        ("2.0.0", '{"topic": "phoenix"}'),
        ("2.0.0", b"\x09\x00"),
    ],
)
async def test_a_frame_phoenix_cannot_decode_closes_the_socket_with_1011(
    hub: RunningHub, vsn: str, frame: str | bytes
) -> None:
    """Phoenix's decode! raises, the socket process dies, Cowboy sends close 1011 (no reason);
    the socket's channels go with it."""
    async with (
        aiohttp.ClientSession() as session,
        raw_socket(session, hub, hub.anon_key, vsn) as ws,
    ):
        await ws.join("realtime:room1", hub.anon_key)
        if isinstance(frame, bytes):
            await ws.ws.send_bytes(frame)
        else:
            await ws.ws.send_str(frame)
        closing = await ws.receive()
        assert closing.type == aiohttp.WSMsgType.CLOSE
        assert (closing.data, closing.extra) == (1011, "")


@pytest.mark.parametrize("hub_settings", [HubSettings(port=0, idle_timeout_s=0.3)])
async def test_idle_socket_is_closed(hub: RunningHub) -> None:
    async with aiohttp.ClientSession() as session, raw_socket(session, hub, hub.anon_key) as ws:
        msg = await ws.receive()
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert msg.data == 1000


@pytest.mark.parametrize(
    ("query", "headers", "status", "error"),
    [
        ("vsn=1.0.0", {}, 401, "API key is missing"),
        ("vsn=1.0.0&apikey=abc", {}, 401, "The token provided is not a valid JWT"),
        ("vsn=1.0.0&apikey={expired}", {}, 401, "Token has expired"),
        ("vsn=1.0.0&apikey={no_role}", {}, 401, "Fields `role` and `exp` are required in JWT"),
        (
            "vsn=1.0.0&apikey={good}",
            {"x-api-key": "{bad_sig}"},
            401,
            "Failed to validate JWT signature",
        ),
    ],
)
async def test_upgrade_refusals_use_realtimes_status_and_text(
    hub: RunningHub, query: str, headers: dict[str, str], status: int, error: str
) -> None:
    tokens = {
        "expired": hub.token(ttl_s=-1),
        "no_role": jwt.encode({"exp": 9_999_999_999}, hub.jwt_secret),
        "good": hub.anon_key,
        "bad_sig": hub.token()[:-4] + "AAAA",
    }
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }
    resolved = {k: v.format(**tokens) for k, v in headers.items()}
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{hub.realtime_url}/websocket?{query.format(**tokens)}",
            headers={**upgrade, **resolved},
        ) as resp,
    ):
        assert resp.status == status
        assert await resp.json() == {"error": error}


@pytest.mark.parametrize(
    ("vsn", "serializer"),
    [
        (None, "1.0.0"),
        ("1.0.0", "1.0.0"),
        ("1.0.7", "1.0.0"),
        ("1.0.1-rc.1", "1.0.0"),
        ("1.0.0+build.5", "1.0.0"),
        ("2.0.0", "2.0.0"),
        ("2.0.3", "2.0.0"),
        ("1.0", None),
        ("", None),
        ("1.0.0-rc.1", None),
        ("1.1.0", None),
        ("01.0.0", None),
        ("1.0.0.0", None),
        ("3.0.0", None),
    ],
)
async def test_vsn_is_negotiated_as_phoenix_does(
    hub: RunningHub, vsn: str | None, serializer: str | None
) -> None:
    """`~> 1.0.0` / `~> 2.0.0` on an Elixir version; anything else is a bare 403, even with
    a bad token (Phoenix negotiates before it authenticates)."""
    query = "" if vsn is None else f"&vsn={quote(vsn)}"
    async with aiohttp.ClientSession() as session:
        if serializer is None:
            async with session.get(
                f"{hub.realtime_url}/websocket?apikey=nonsense{query}",
                headers={
                    "Connection": "Upgrade",
                    "Upgrade": "websocket",
                    "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
                },
            ) as resp:
                assert resp.status == 403
                assert await resp.read() == b""
            return
        url = f"{hub.realtime_url}/websocket?apikey={hub.anon_key}{query}"
        async with session.ws_connect(url) as ws:
            join = {"config": {}, "access_token": hub.anon_key}
            if serializer == "1.0.0":
                await ws.send_json(
                    {"topic": "realtime:v", "event": "phx_join", "payload": join, "ref": "1"}
                )
                assert (await ws.receive_json(timeout=TIMEOUT))["ref"] == "1"
            else:
                await ws.send_json(["1", "1", "realtime:v", "phx_join", join])
                assert (await ws.receive_json(timeout=TIMEOUT))[3] == "phx_reply"


@pytest.mark.parametrize("hub_settings", [HubSettings(port=0, max_socket_buffer_kb=64)])
async def test_a_client_that_stops_reading_is_disconnected(hub: RunningHub) -> None:
    """Raw TCP client: completes the handshake, joins, then never reads again."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.hub.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /socket/websocket?apikey={hub.anon_key}&vsn=1.0.0 HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
        ).encode()
    )
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    join = json.dumps(
        {
            "topic": "realtime:slow",
            "event": "phx_join",
            "ref": "1",
            "join_ref": "1",
            "payload": {"config": {"private": False}},
        }
    ).encode()
    writer.write(bytes((0x81, 0x80 | 126)) + struct.pack("!H", len(join)) + b"\0\0\0\0" + join)
    await writer.drain()
    state = hub.hub.state
    assert state is not None
    async with aiohttp.ClientSession() as session:
        big = {"blob": "x" * 200_000}
        deadline = asyncio.get_running_loop().time() + 60
        while not state.metrics.registry.get_sample_value("hub_slow_consumers_total"):
            assert asyncio.get_running_loop().time() < deadline, "slow client never dropped"
            status, _ = await post_batch(
                session, hub, [{"topic": "slow", "event": "e", "payload": big}] * 5
            )
            assert status == 202
    assert not state.registry.subscribers((False, "slow"))
    writer.close()


async def test_a_rejoin_closes_the_old_channel_and_a_late_leave_of_it_is_ignored(
    hub: RunningHub,
) -> None:
    """As Phoenix: a second join of a topic closes the first (phx_close with its join_ref) before
    the reply; a leave carrying the first join's ref raced the rejoin and must not close it."""
    async with aiohttp.ClientSession() as session, raw_socket(session, hub, hub.anon_key) as ws:
        first = await ws.join("realtime:rejoined", hub.anon_key)
        await ws.send("realtime:rejoined", "phx_join", {"access_token": hub.anon_key}, "5", "5")
        assert await ws.receive() == {
            "topic": "realtime:rejoined",
            "event": "phx_close",
            "ref": first["ref"],
            "payload": {},
        }
        assert (await ws.receive())["ref"] == "5"  # the new join's reply
        await ws.send("realtime:rejoined", "phx_leave", {}, "6", first["ref"])  # stale
        await ws.send("phoenix", "heartbeat", {}, "7")
        assert await ws.receive() == {  # no reply to the stale leave, no phx_close
            "topic": "phoenix",
            "event": "phx_reply",
            "ref": "7",
            "payload": {"status": "ok", "response": {}},
        }
        await ws.send("realtime:rejoined", "broadcast", {"type": "broadcast"}, "8", "5")
        await ws.send("phoenix", "heartbeat", {}, "9")
        assert (await ws.receive())["ref"] == "9"  # still joined: no "unmatched topic"


async def test_messages_for_no_channel_are_answered_as_phoenix_does(hub: RunningHub) -> None:
    """A leave of a topic that is not joined is ok (a client leaving after the server closed
    the channel); anything else gets "unmatched topic", a reply without a join_ref (V2 shows
    it), as does a join of a topic outside realtime:*."""
    async with (
        aiohttp.ClientSession() as session,
        raw_socket(session, hub, hub.anon_key, "2.0.0") as ws,
    ):
        await ws.send("realtime:never-joined", "phx_leave", {}, "1", "1")
        assert await ws.receive() == [
            "1",
            "1",
            "realtime:never-joined",
            "phx_reply",
            {"status": "ok", "response": {}},
        ]
        unmatched = {"status": "error", "response": {"reason": "unmatched topic"}}
        await ws.send("realtime:never-joined", "broadcast", {"type": "broadcast"}, "2", "1")
        assert await ws.receive() == [None, "2", "realtime:never-joined", "phx_reply", unmatched]
        await ws.send("room1", "phx_join", {"access_token": hub.anon_key}, "3", "3")
        assert await ws.receive() == [None, "3", "room1", "phx_reply", unmatched]
