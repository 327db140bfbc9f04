"""The unchanged realtime-py client (vsn 1.0.0) against the hub: join, deny, deliver, tokens."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import aiohttp
import asyncpg
import jwt
import pytest
from realtime import AsyncRealtimeClient, RealtimeSubscribeStates
from realtime.exceptions import RealtimeHTTPError
from websockets.exceptions import InvalidStatus

from tests.fixtures.hub import RunningHub
from tests.fixtures.hub_clients import (
    TIMEOUT,
    channel_config,
    post_batch,
    seed_group,
    subscribed,
)

SUBSCRIBED = RealtimeSubscribeStates.SUBSCRIBED
CHANNEL_ERROR = RealtimeSubscribeStates.CHANNEL_ERROR
CLOSED = RealtimeSubscribeStates.CLOSED


async def wall_clock_passes(epoch_s: float) -> None:
    """Token expiry is wall-clock time: the only way to test it is to let that time pass."""
    await asyncio.sleep(max(0.0, epoch_s - time.time()))
    assert time.time() >= epoch_s


async def test_teacher_joins_private_assignment_channel(
    hub: RunningHub, db: asyncpg.Connection
) -> None:
    group = await seed_group(db)
    async with subscribed(hub, group.topic(), hub.token(sub=group.teacher)) as sub:
        assert await sub.state() == (SUBSCRIBED, None)


async def test_pupil_is_refused_with_realtimes_unauthorized_reason(
    hub: RunningHub, db: asyncpg.Connection
) -> None:
    group = await seed_group(db)
    async with subscribed(hub, group.topic(), hub.token(sub=group.pupil)) as sub:
        state, error = await sub.state()
    assert state == CHANNEL_ERROR
    assert json.loads(str(error)) == {
        "reason": "Unauthorized: You do not have permissions to read from this Channel topic: "
        f"{group.topic()}"
    }


async def test_teacher_of_another_group_is_refused(hub: RunningHub, db: asyncpg.Connection) -> None:
    group, other = await seed_group(db, "G1"), await seed_group(db, "G2")
    async with subscribed(hub, group.topic(), hub.token(sub=other.teacher)) as sub:
        state, _ = await sub.state()
    assert state == CHANNEL_ERROR


async def test_rest_batch_broadcast_arrives_with_payload_intact(
    hub: RunningHub, db: asyncpg.Connection
) -> None:
    group = await seed_group(db)
    payload = {
        "cell": {"pupil": group.pupil, "activity": "a1", "score": 0.5, "flags": [True, None]},
        "text": "Größe — 学生 ✓",
        "seq": 41,
    }
    message_id = str(uuid.uuid4())
    async with subscribed(hub, group.topic(), hub.token(sub=group.teacher)) as sub:
        assert (await sub.state())[0] == SUBSCRIBED
        async with aiohttp.ClientSession() as session:
            status, body = await post_batch(
                session,
                hub,
                [
                    {"topic": group.topic(), "event": "cell", "payload": payload, "private": True},
                    {
                        "topic": group.topic(),
                        "event": "cell",
                        "payload": {"seq": 42},
                        "private": True,
                        "id": message_id,
                    },
                ],
            )
        assert (status, body) == (202, "")
        assert await sub.message() == {"event": "cell", "payload": payload}
        assert await sub.message() == {
            "event": "cell",
            "payload": {"seq": 42},
            "meta": {"id": message_id},
        }


async def test_public_and_private_channels_of_one_name_are_separate_streams(
    hub: RunningHub, db: asyncpg.Connection
) -> None:
    group = await seed_group(db)
    teacher = hub.token(sub=group.teacher)
    async with (
        subscribed(hub, group.topic(), teacher) as private,
        subscribed(hub, group.topic(), teacher, channel_config(private=False)) as public,
        aiohttp.ClientSession() as session,
    ):
        assert (await private.state())[0] == SUBSCRIBED
        assert (await public.state())[0] == SUBSCRIBED
        for n in (1, 2):
            status, _ = await post_batch(
                session,
                hub,
                [
                    {"topic": group.topic(), "event": "e", "payload": {"public": n}},
                    {
                        "topic": group.topic(),
                        "event": "e",
                        "payload": {"private": n},
                        "private": True,
                    },
                ],
            )
            assert status == 202
        # Per-socket order is preserved, so a leak would show up between the two messages.
        public_got = [(await public.message())["payload"] for _ in range(2)]
        private_got = [(await private.message())["payload"] for _ in range(2)]
        assert public_got == [{"public": 1}, {"public": 2}]
        assert private_got == [{"private": 1}, {"private": 2}]


async def test_private_batch_without_write_permission_is_dropped_with_202(
    hub: RunningHub, db: asyncpg.Connection
) -> None:
    group = await seed_group(db)
    async with (
        subscribed(hub, group.topic(), hub.token(sub=group.teacher)) as sub,
        aiohttp.ClientSession() as session,
    ):
        assert (await sub.state())[0] == SUBSCRIBED
        msg = {"topic": group.topic(), "event": "e", "private": True}
        # No INSERT policy lets `authenticated` write: Realtime drops silently and answers 202.
        denied = await post_batch(
            session, hub, [{**msg, "payload": {"n": 1}}], hub.token(sub=group.teacher)
        )
        assert denied == (202, "")
        assert await post_batch(session, hub, [{**msg, "payload": {"n": 2}}]) == (202, "")
        assert (await sub.message())["payload"] == {"n": 2}


async def test_client_broadcast_with_self_and_ack_on_public_channel(hub: RunningHub) -> None:
    config = channel_config(private=False, ack=True, self=True)
    async with (
        subscribed(hub, "room:1", hub.anon_key, config) as sender,
        subscribed(hub, "room:1", hub.anon_key, channel_config(private=False)) as receiver,
    ):
        assert (await sender.state())[0] == SUBSCRIBED
        assert (await receiver.state())[0] == SUBSCRIBED
        acked: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        push = await sender.channel.push(
            "broadcast", {"type": "broadcast", "event": "ping", "payload": {"n": 1}}
        )
        push.receive("ok", acked.set_result)
        assert await receiver.message() == {"event": "ping", "payload": {"n": 1}}
        assert await sender.message() == {"event": "ping", "payload": {"n": 1}}
        await asyncio.wait_for(acked, TIMEOUT)


async def test_private_client_broadcast_needs_the_write_policy(
    hub: RunningHub, db: asyncpg.Connection
) -> None:
    """A teacher may read but not write (no INSERT policy); service_role bypasses RLS."""
    group = await seed_group(db)
    async with (
        subscribed(hub, group.topic(), hub.token(sub=group.teacher)) as teacher,
        subscribed(hub, group.topic(), hub.token(sub=group.teacher)) as receiver,
        subscribed(hub, group.topic(), hub.service_role_key) as service,
    ):
        for sub in (teacher, receiver, service):
            assert (await sub.state())[0] == SUBSCRIBED
        await teacher.channel.send_broadcast("from-teacher", {"n": 1})
        await service.channel.send_broadcast("from-service", {"n": 2})
        # Frames of one socket are handled in order, but two sockets race: the teacher's frame
        # is settled once a later join on the same socket has been answered.
        extra = teacher.client.channel("probe:1")
        joined = []
        await extra.subscribe(lambda state, _: joined.append(state))
        assert joined == [SUBSCRIBED]
        await service.channel.send_broadcast("from-service", {"n": 3})
        received = [await receiver.message(), await receiver.message()]
        assert [m["event"] for m in received] == ["from-service", "from-service"]
        assert [m["payload"]["n"] for m in received] == [2, 3]


async def test_rest_single_endpoint_via_http_send(hub: RunningHub, db: asyncpg.Connection) -> None:
    group = await seed_group(db)
    async with subscribed(hub, group.topic(), hub.token(sub=group.teacher)) as sub:
        assert (await sub.state())[0] == SUBSCRIBED
        sender = AsyncRealtimeClient(hub.realtime_url, token=hub.service_role_key)
        await sender.channel(group.topic(), channel_config()).http_send("cell", {"seq": 7})
        assert await sub.message() == {"event": "cell", "payload": {"seq": 7}}
        pupil = AsyncRealtimeClient(hub.realtime_url, token=hub.token(sub=group.pupil))
        with pytest.raises(RealtimeHTTPError) as denied:
            await pupil.channel(group.topic(), channel_config()).http_send("cell", {"seq": 8})
        assert denied.value.status == 403
        assert str(denied.value) == "Unauthorized"


async def test_expired_token_closes_the_channel_with_a_system_error(
    hub: RunningHub, db: asyncpg.Connection
) -> None:
    group = await seed_group(db)
    token = hub.token(sub=group.teacher, ttl_s=2)
    async with subscribed(hub, group.topic(), token) as sub:
        assert (await sub.state())[0] == SUBSCRIBED
        state, error = await sub.state()
        assert state == CHANNEL_ERROR
        system = json.loads(str(error))
        assert system["extension"] == "system"
        assert system["status"] == "error"
        assert system["channel"] == group.topic()
        assert system["message"].startswith("Token has expired ")
        assert system["message"].endswith(" seconds ago")
        assert (await sub.state())[0] == CLOSED
        assert group.topic() not in {c.topic for c in sub.client.get_channels()}


async def test_refreshed_token_keeps_the_channel_and_revoked_access_closes_it(
    hub: RunningHub, db: asyncpg.Connection
) -> None:
    group = await seed_group(db)
    short_lived = hub.token(sub=group.teacher, ttl_s=2)
    old_exp = jwt.decode(short_lived, options={"verify_signature": False})["exp"]
    async with (
        subscribed(hub, group.topic(), short_lived) as sub,
        aiohttp.ClientSession() as session,
    ):
        assert (await sub.state())[0] == SUBSCRIBED
        await sub.client.set_auth(hub.token(sub=group.teacher, ttl_s=3600))
        # The refresh has no reply; the old token's expiry passes without closing the channel,
        # and a message sent after it still arrives.
        await wall_clock_passes(old_exp + 1)
        assert await post_batch(
            session, hub, [{"topic": group.topic(), "event": "e", "payload": {}, "private": True}]
        ) == (202, "")
        assert await sub.message() == {"event": "e", "payload": {}}
        assert sub.states.empty()
        await sub.client.set_auth(hub.token(sub=group.pupil))
        state, error = await sub.state()
        assert state == CHANNEL_ERROR
        assert json.loads(str(error))["message"] == (
            f"You do not have permissions to read from this Channel topic: {group.topic()}"
        )
        assert (await sub.state())[0] == CLOSED


async def test_bad_token_is_refused_at_connect(hub: RunningHub) -> None:
    client = AsyncRealtimeClient(hub.realtime_url, token=hub.token()[:-4] + "AAAA", max_retries=1)
    with pytest.raises(InvalidStatus) as refused:
        await client.connect()
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body) == {"error": "Failed to validate JWT signature"}
