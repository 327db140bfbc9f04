"""The REST broadcast API's statuses and bodies, and the tenant limits with Realtime's errors."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from realtime import RealtimeSubscribeStates

from daemon.config import HubSettings
from tests.fixtures.hub import RunningHub
from tests.fixtures.hub_clients import channel_config, post_batch, raw_socket, subscribed

PUBLIC = channel_config(private=False)
UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    body: Any,
    *,
    content_type: str | None = "application/json",
) -> tuple[int, Any, dict[str, str]]:
    """POST with this Content-Type (a `Content-Type` in `headers` wins; None sends none)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": content_type, **headers} if content_type else headers
    skip = () if content_type or "Content-Type" in headers else ("Content-Type",)
    async with session.post(url, data=data, headers=headers, skip_auto_headers=skip) as resp:
        text = await resp.text()
        return resp.status, (json.loads(text) if text else None), dict(resp.headers)


@pytest.mark.parametrize("prefix", ["/realtime/v1", ""])
async def test_batch_accepts_on_both_paths(hub: RunningHub, prefix: str) -> None:
    async with aiohttp.ClientSession() as session:
        status, body, _ = await _post(
            session,
            f"{hub.url}{prefix}/api/broadcast",
            {"apikey": hub.service_role_key, "Content-Type": "application/json"},
            {"messages": [{"topic": "t", "event": "e", "payload": {}}]},
        )
    assert (status, body) == (202, None)


async def test_batch_frames_reach_a_socket_in_order_and_byte_exact(hub: RunningHub) -> None:
    """A batch's frames for one socket leave in one write; order and bytes are unchanged."""
    messages = [
        {"topic": "room:a", "event": "e", "payload": {"n": 1, "small": 1e-05}},
        {"topic": "room:b", "event": "e", "payload": {"n": 2, "text": "é", "big": 2**70}},
        {"topic": "room:a", "event": "f", "payload": {"n": 3}, "id": "3" * 32},
    ]
    async with aiohttp.ClientSession() as session, raw_socket(session, hub, hub.anon_key) as ws:
        await ws.join("realtime:room:a", hub.anon_key)
        await ws.join("realtime:room:b", hub.anon_key)
        assert (await post_batch(session, hub, messages))[0] == 202
        frames = [(await ws.ws.receive()).data for _ in messages]
    assert frames == [
        '{"topic":"realtime:room:a","event":"broadcast","payload":{"event":"e","payload":'
        '{"n":1,"small":1e-05},"type":"broadcast"},"ref":null}',
        '{"topic":"realtime:room:b","event":"broadcast","payload":{"event":"e","payload":'
        '{"n":2,"text":"é","big":1180591620717411303424},"type":"broadcast"},"ref":null}',
        '{"topic":"realtime:room:a","event":"broadcast","payload":{"event":"f","meta":'
        f'{{"id":"{"3" * 32}"}},"payload":{{"n":3}},"type":"broadcast"}},"ref":null}}',
    ]


async def test_batch_payloads_are_compacted_keeping_the_senders_numbers(
    hub: RunningHub,
) -> None:
    """Whitespace goes, numbers stay as spelled, escapes come out as `dumps` prints them."""
    body = (
        b'{"messages": [\n'
        b'  {"topic": "room:a", "event": "e", "payload": {"a" : 1.50, "b": [1, {"c": null}]}},\n'
        b'  {"topic": "room:a", "event": "e", "payload": {"s": "\\u00e9\\"x", "n": 2.0}}\n'
        b"]}"
    )
    async with aiohttp.ClientSession() as session, raw_socket(session, hub, hub.anon_key) as ws:
        await ws.join("realtime:room:a", hub.anon_key)
        status, _, _ = await _post(
            session, f"{hub.realtime_url}/api/broadcast", {"apikey": hub.service_role_key}, body
        )
        assert status == 202
        frames = [(await ws.ws.receive()).data for _ in range(2)]
    payloads = [frame.split('"payload":{"event":"e","payload":')[1] for frame in frames]
    assert payloads == [
        '{"a":1.50,"b":[1,{"c":null}]},"type":"broadcast"},"ref":null}',
        '{"s":"\u00e9\\"x","n":2.0},"type":"broadcast"},"ref":null}',
    ]


@pytest.mark.parametrize(
    ("body", "status", "answer"),
    [
        (b"[]", 422, {"errors": {"messages": ["can't be blank"]}}),
        (b'{"messages": "x"}', 422, {"errors": {"messages": ["is invalid"]}}),
        (
            b'{"messages": [1, {"topic": "t", "event": "e", "payload": {}}]}',
            422,
            {"errors": {"messages": [{"messages": ["is invalid"]}, {}]}},
        ),
        (
            b'{"messages": [{"topic": 5, "event": "e", "payload": null, "private": "yes"}]}',
            422,
            {
                "errors": {
                    "messages": [
                        {
                            "topic": ["is invalid"],
                            "payload": ["can't be blank"],
                            "private": ["is invalid"],
                        }
                    ]
                }
            },
        ),
    ],
)
async def test_batch_bodies_of_another_shape_get_realtimes_answers(
    hub: RunningHub, body: bytes, status: int, answer: Any
) -> None:
    async with aiohttp.ClientSession() as session:
        got = await _post(
            session, f"{hub.realtime_url}/api/broadcast", {"apikey": hub.service_role_key}, body
        )
    assert got[:2] == (status, answer)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nonsense"},
        {"apikey": "expired"},
        {"Authorization": "Basic abc"},
    ],
)
async def test_batch_without_a_valid_token_is_401(hub: RunningHub, headers: dict[str, str]) -> None:
    resolved = {k: hub.token(ttl_s=-1) if v == "expired" else v for k, v in headers.items()}
    async with aiohttp.ClientSession() as session:
        status, body, _ = await _post(
            session,
            f"{hub.realtime_url}/api/broadcast",
            resolved,
            {"messages": [{"topic": "t", "event": "e", "payload": {}}]},
        )
    assert (status, body) == (401, {"message": "Unauthorized"})


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"messages": ["can't be blank"]}),
        (
            {
                "messages": [
                    {"topic": "t", "event": "e", "payload": {}},
                    {"topic": "t", "payload": {}},
                ]
            },
            {"messages": [{}, {"event": ["can't be blank"]}]},
        ),
        (
            {"messages": [{"topic": "t", "event": "e", "payload": [1]}]},
            {"messages": [{"payload": ["is invalid"]}]},
        ),
        (
            {"messages": [{"topic": "  ", "event": "\t", "payload": {}}]},
            {"messages": [{"topic": ["can't be blank"], "event": ["can't be blank"]}]},
        ),
    ],
)
async def test_batch_validation_errors_are_422_changesets(
    hub: RunningHub, body: Any, errors: Any
) -> None:
    async with aiohttp.ClientSession() as session:
        status, got, _ = await _post(
            session, f"{hub.realtime_url}/api/broadcast", {"apikey": hub.service_role_key}, body
        )
    assert (status, got) == (422, {"errors": errors})


async def test_single_endpoint_media_types(hub: RunningHub) -> None:
    url = f"{hub.realtime_url}/api/broadcast/room%3A1/events/e"
    key = {"apikey": hub.service_role_key}
    async with aiohttp.ClientSession() as session:
        status, body, _ = await _post(session, url, {**key, "Content-Type": "text/plain"}, b"hi")
        assert (status, body) == (
            415,
            {"error": "Unsupported Media Type. Use application/json or application/octet-stream"},
        )
        status, _, _ = await _post(
            session, url, {**key, "Content-Type": "application/octet-stream"}, b"\x00\x01"
        )
        assert status == 202
        for content_type in ("", "garbage", "application/vnd.api+json", "text/*"):
            status, _, _ = await _post(session, url, {**key, "Content-Type": content_type}, {})
            assert status == 415, content_type


@pytest.mark.parametrize(
    ("endpoint", "content_type", "status", "answer"),
    [
        # Plug.Parsers reads only JSON (and forms and octet-stream): the batch controller sees
        # no `messages` in any other body ...
        ("batch", None, 422, {"errors": {"messages": ["can't be blank"]}}),
        ("batch", "text/plain", 422, {"errors": {"messages": ["can't be blank"]}}),
        ("batch", "application/octet-stream", 422, {"errors": {"messages": ["can't be blank"]}}),
        ("batch", "garbage", 422, {"errors": {"messages": ["can't be blank"]}}),
        ("batch", "Application/JSON; charset=utf-8", 202, None),
        ("batch", "application/merge-patch+json", 202, None),
        # ... and the single endpoint, which lets a missing Content-Type through, sends `{}`.
        ("single", None, 202, {}),
        ("single", "application/json", 202, {"k": 1}),
    ],
)
async def test_a_body_is_read_only_with_a_json_content_type(
    hub: RunningHub, endpoint: str, content_type: str | None, status: int, answer: Any
) -> None:
    async with (
        subscribed(hub, "room:1", hub.anon_key, PUBLIC) as sub,
        aiohttp.ClientSession() as session,
    ):
        assert (await sub.state())[0] == RealtimeSubscribeStates.SUBSCRIBED
        if endpoint == "batch":
            url = f"{hub.realtime_url}/api/broadcast"
            body: Any = {"messages": [{"topic": "room:1", "event": "e", "payload": {"k": 1}}]}
        else:
            url, body = f"{hub.realtime_url}/api/broadcast/room:1/events/e", {"k": 1}
        key = {"apikey": hub.service_role_key}
        got = await _post(session, url, key, body, content_type=content_type)
        if endpoint == "batch":
            assert got[:2] == (status, answer)
            if status == 202:
                assert await sub.message() == {"event": "e", "payload": {"k": 1}}
        else:
            assert got[0] == status
            assert await sub.message() == {"event": "e", "payload": answer}


@pytest.mark.parametrize(
    ("accept", "content_type", "body"),
    [
        (None, "text/html; charset=utf-8", b"Bad Request"),
        ("text/html,application/xhtml+xml,*/*;q=0.8", "text/html; charset=utf-8", b"Bad Request"),
        ("application/json", "application/json; charset=utf-8", b'"Bad Request"'),
    ],
)
@pytest.mark.parametrize("path", ["/api/broadcast", "/api/broadcast/t/events/e"])
async def test_malformed_json_is_phoenixs_400_before_auth(
    hub: RunningHub, accept: str | None, content_type: str, body: bytes, path: str
) -> None:
    """Plug.Parsers raises before any route, so no token is looked at; Phoenix renders the
    error with Realtime's template-less ErrorView, as HTML unless JSON is asked for."""
    headers = {"Content-Type": "application/json"}
    if accept is not None:
        headers["Accept"] = accept
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{hub.realtime_url}{path}", data=b'{"messages": [', headers=headers) as resp,
    ):
        assert resp.status == 400
        assert resp.headers["Content-Type"] == content_type
        assert await resp.read() == body


@pytest.mark.parametrize(
    "hub_settings", [HubSettings(port=0, max_events_per_second=50, rate_window_s=30)]
)
async def test_every_answer_past_the_rate_limiter_carries_the_rate_headers(
    hub: RunningHub,
) -> None:
    """Realtime's RateLimiter plug sets x-rate-* on the connection before authentication and
    validation; the 415 of the single endpoint comes before it and has none."""
    batch = f"{hub.realtime_url}/api/broadcast"
    single = f"{hub.realtime_url}/api/broadcast/t/events/e"
    key = {"apikey": hub.service_role_key}
    one = {"messages": [{"topic": "t", "event": "e", "payload": {}}]}
    async with aiohttp.ClientSession() as session:
        answers = [
            await _post(session, batch, key, one),
            await _post(session, batch, {}, one),
            await _post(session, batch, key, {"messages": []}),
            await _post(session, single, key, {}),
            await _post(session, single, {"apikey": "nonsense"}, {}),
        ]
        assert [status for status, _, _ in answers] == [202, 401, 422, 202, 401]
        for _, _, headers in answers:
            assert headers.get("x-rate-limit") == "50", headers
            assert {"x-rate-rolling", "x-rate-limit-remaining"} <= set(headers)
        status, _, headers = await _post(session, single, {**key, "Content-Type": "text/plain"}, {})
        assert status == 415
        assert "x-rate-limit" not in headers


async def test_single_endpoint_wraps_a_non_object_body(hub: RunningHub) -> None:
    async with (
        subscribed(hub, "room:1", hub.anon_key, PUBLIC) as sub,
        aiohttp.ClientSession() as session,
    ):
        assert (await sub.state())[0] == RealtimeSubscribeStates.SUBSCRIBED
        status, _, _ = await _post(
            session,
            f"{hub.realtime_url}/api/broadcast/room:1/events/e",
            {"apikey": hub.service_role_key, "Content-Type": "application/json"},
            [1, 2],
        )
        assert status == 202
        assert await sub.message() == {"event": "e", "payload": {"_json": [1, 2]}}


async def _batch_of_one(
    session: aiohttp.ClientSession, hub: RunningHub, payload: dict[str, Any]
) -> tuple[int, Any]:
    """A REST batch of one message to topic 't' with this payload: status and body."""
    status, body, _ = await _post(
        session,
        f"{hub.realtime_url}/api/broadcast",
        {"apikey": hub.service_role_key},
        {"messages": [{"topic": "t", "event": "e", "payload": payload}]},
    )
    return status, body


async def test_a_body_over_a_mebibyte_within_the_payload_limit_is_accepted(hub: RunningHub) -> None:
    """Realtime parses bodies up to 8 MB and refuses by its payload limit (3,000 kB by default);
    aiohttp's own 1 MiB limit answered a plain-text 413 instead."""
    async with aiohttp.ClientSession() as session:
        status, body = await _batch_of_one(session, hub, {"blob": "x" * 1_200_000})
    assert status == 202, body


@pytest.mark.parametrize("hub_settings", [HubSettings(port=0, max_payload_kb=1)])
async def test_payload_size_limit(hub: RunningHub) -> None:
    big = {"blob": "x" * 1600}
    async with aiohttp.ClientSession() as session:
        status, body = await _batch_of_one(session, hub, big)
        assert (status, body) == (
            422,
            {"errors": {"messages": [{"payload": ["Payload size exceeds tenant limit"]}]}},
        )
        status, body, _ = await _post(
            session,
            f"{hub.realtime_url}/api/broadcast/t/events/e",
            {"apikey": hub.service_role_key},
            big,
        )
        assert (status, body) == (
            422,
            {"errors": {"payload": ["Payload size exceeds tenant limit"]}},
        )
        async with raw_socket(session, hub, hub.anon_key) as ws:
            await ws.join("realtime:t", hub.anon_key, ack=True)
            await ws.send(
                "realtime:t",
                "broadcast",
                {"type": "broadcast", "event": "e", "payload": big},
                "2",
                "1",
            )
            assert (await ws.receive())["payload"] == {
                "status": "error",
                "response": "payload_size_exceeded",
            }


@pytest.mark.parametrize(
    "hub_settings", [HubSettings(port=0, max_events_per_second=1, rate_window_s=30)]
)
async def test_events_per_second_limit_gives_realtimes_429s(hub: RunningHub) -> None:
    key = {"apikey": hub.service_role_key}
    async with aiohttp.ClientSession() as session:
        status, body, _ = await _post(
            session,
            f"{hub.realtime_url}/api/broadcast",
            key,
            {"messages": [{"topic": "t", "event": "e", "payload": {}}] * 40},
        )
        assert (status, body) == (
            429,
            {"message": "Too many messages to broadcast, please reduce the batch size"},
        )
        for _ in range(30):  # 30 events in a 30 s window: the rolling average reaches 1/s
            status, _, _ = await _post(
                session, f"{hub.realtime_url}/api/broadcast/t/events/e", key, {}
            )
            assert status == 202
        status, body, headers = await _post(
            session, f"{hub.realtime_url}/api/broadcast/t/events/e", key, {}
        )
    assert (status, body) == (429, {"message": "Too many requests"})
    assert headers["x-rate-limit"] == "1"
    assert headers["x-rate-limit-remaining"] == "0"


@pytest.mark.parametrize(
    "hub_settings", [HubSettings(port=0, max_events_per_second=1, rate_window_s=30)]
)
async def test_tripped_events_limit_shuts_receiving_channels_down(hub: RunningHub) -> None:
    config = channel_config(private=False, self=True)
    async with subscribed(hub, "room:busy", hub.anon_key, config) as sub:
        assert (await sub.state())[0] == RealtimeSubscribeStates.SUBSCRIBED
        for n in range(30):
            await sub.channel.send_broadcast("e", {"n": n})
        state, error = await sub.state()
        assert state == RealtimeSubscribeStates.CHANNEL_ERROR
        assert json.loads(str(error))["message"] == "Too many messages per second"
        assert (await sub.state())[0] == RealtimeSubscribeStates.CLOSED


@pytest.mark.parametrize("hub_settings", [HubSettings(port=0, max_channels_per_socket=1)])
async def test_channels_per_socket_limit(hub: RunningHub) -> None:
    async with aiohttp.ClientSession() as session, raw_socket(session, hub, hub.anon_key) as ws:
        assert (await ws.join("realtime:a", hub.anon_key))["payload"]["status"] == "ok"
        assert (await ws.join("realtime:b", hub.anon_key))["payload"]["response"] == {
            "reason": "ChannelRateLimitReached: Too many channels"
        }


@pytest.mark.parametrize(
    "hub_settings", [HubSettings(port=0, max_joins_per_second=0.1, rate_window_s=30)]
)
async def test_joins_per_second_limit_refuses_joins_then_connects(hub: RunningHub) -> None:
    async with aiohttp.ClientSession() as session:
        async with raw_socket(session, hub, hub.anon_key) as ws:
            for n in range(3):  # 3 joins in 30 s = 0.1/s
                assert (await ws.join(f"realtime:j{n}", hub.anon_key))["payload"]["status"] == "ok"
            reply = await ws.join("realtime:j9", hub.anon_key)
            assert reply["payload"]["response"] == {
                "reason": "ClientJoinRateLimitReached: Too many joins per second"
            }
            closed = await ws.receive()
            assert closed.type == aiohttp.WSMsgType.CLOSE
            assert closed.data == 1001
        async with session.get(
            f"{hub.realtime_url}/websocket?apikey={hub.anon_key}&vsn=1.0.0",
            headers=UPGRADE,
        ) as resp:
            assert resp.status == 429
            assert await resp.json() == {"error": "Too many joins per second"}


@pytest.mark.parametrize("hub_settings", [HubSettings(port=0, max_concurrent_users=1)])
async def test_concurrent_users_limit(hub: RunningHub) -> None:
    async with (
        aiohttp.ClientSession() as session,
        raw_socket(session, hub, hub.anon_key) as idle,
        raw_socket(session, hub, hub.anon_key) as ws,
    ):
        assert (await ws.join("realtime:a", hub.anon_key))["payload"]["status"] == "ok"
        # `idle` connected before the limit was reached; it is not a user until it joins.
        assert (await idle.join("realtime:b", hub.anon_key))["payload"]["response"] == {
            "reason": "ConnectionRateLimitReached: Too many connected users"
        }
        async with session.get(
            f"{hub.realtime_url}/websocket?apikey={hub.anon_key}&vsn=1.0.0", headers=UPGRADE
        ) as resp:
            assert resp.status == 429
            assert await resp.json() == {"error": "Too many connected users"}


async def test_metrics_endpoint_counts_sockets_channels_deliveries_and_denials(
    hub: RunningHub,
) -> None:
    async with aiohttp.ClientSession() as session, raw_socket(session, hub, hub.anon_key) as ws:
        await ws.join("realtime:m", hub.anon_key)
        await ws.join("realtime:m2", "bad-token")
        await post_batch(session, hub, [{"topic": "m", "event": "e", "payload": {}}])
        await ws.receive()
        async with session.get(f"{hub.url}/metrics") as resp:
            text = await resp.text()
    assert "hub_sockets 1.0" in text
    assert "hub_channels 1.0" in text
    assert "hub_deliveries_total 1.0" in text
    assert 'hub_denied_joins_total{code="MalformedJWT"} 1.0' in text
