"""Realtime's broadcast REST API: the batch endpoint and the single-message endpoint.

Statuses and bodies are Realtime's (202 empty; 401/403 `{"message"}`; 422 changeset `{"errors"}`;
429 with its three texts; Phoenix's 400 for malformed JSON), so a publisher's error handling can
be tested against this server. Bodies are read as Plug.Parsers reads them (see `media`), and every
answer past the rate limiter carries its x-rate-* headers.
Topics are bare channel names; `private` selects the private stream and runs the RLS write check.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from daemon.hub.auth import (
    AuthContext,
    Claims,
    PolicyCheckFailed,
    TokenRejected,
    bearer_token,
)
from daemon.hub.channels import JsonBroadcast, Outgoing, StreamKey, UserBroadcast
from daemon.hub.media import MediaType, bad_request, content_type
from daemon.hub.serializers import UserPayload, dumps, loads
from daemon.hub.state import HUB_STATE, HubState
from daemon.log import get_logger

log = get_logger(__name__)

_UNSUPPORTED_MEDIA = "Unsupported Media Type. Use application/json or application/octet-stream"
_PAYLOAD_TOO_LARGE = "Payload size exceeds tenant limit"
_JSON = MediaType("application", "json")
_OCTET_STREAM = MediaType("application", "octet-stream")
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "authorization, apikey, content-type, x-client-info",
}


Headers = dict[str, str]


def _message(state: HubState, status: int, text: str, headers: Headers) -> web.Response:
    state.metrics.rest_rejected.labels(str(status)).inc()
    log.info("hub.rest.rejected", status=status, message=text)
    return web.json_response({"message": text}, status=status, headers=headers)


def _errors(state: HubState, errors: dict[str, Any], headers: Headers) -> web.Response:
    state.metrics.rest_rejected.labels("422").inc()
    log.info("hub.rest.rejected", status=422, errors=errors)
    return web.json_response({"errors": errors}, status=422, headers=headers)


def _bad_request(state: HubState, request: web.Request) -> web.Response:
    """Plug.Parsers refused the JSON body: before any route, so no CORS or rate headers."""
    state.metrics.rest_rejected.labels("400").inc()
    log.info("hub.rest.rejected", status=400, message="Malformed JSON body")
    return bad_request(request)


def _rate_headers(state: HubState) -> Headers:
    limit = state.limits.max_events
    if limit <= 0:
        return {}
    avg = int(state.limits.events.average())
    return {
        "x-rate-rolling": str(avg),
        "x-rate-limit": str(int(limit)),
        "x-rate-limit-remaining": str(int(limit) - avg),
    }


def _rate_limit(state: HubState) -> tuple[Headers, web.Response | None]:
    """The RateLimiter plug, before authentication: it puts the rate headers on the response
    whatever comes next (401, 422, 429 or 202), and answers 429 itself when the tenant's
    rolling events/s has reached the limit."""
    headers = {**_CORS, **_rate_headers(state)}
    if state.limits.events_tripped():
        return headers, _message(state, 429, "Too many requests", headers)
    return headers, None


def _authenticate(state: HubState, request: web.Request) -> Claims | None:
    token = bearer_token(request.headers.get("authorization"), request.headers.get("apikey"))
    try:
        return state.tokens.verify(token)
    except TokenRejected:
        return None


def _forwarded_headers(request: web.Request) -> dict[str, str]:
    """The request headers an RLS check sees (credentials left out)."""
    return {
        k.lower(): v
        for k, v in request.headers.items()
        if k.lower() not in ("authorization", "apikey")
    }


def _auth_context(request: web.Request, topic: str, claims: Claims) -> AuthContext:
    return AuthContext(topic, claims, _forwarded_headers(request))


async def preflight(request: web.Request) -> web.Response:
    del request
    return web.Response(status=200, headers=_CORS)


@dataclass(frozen=True, slots=True)
class _Valid:
    """One validated batch message; the payload is encoded once, for the size check and the
    frame."""

    topic: str
    event: str
    private: bool
    id: Any
    payload_json: str


@dataclass(frozen=True, slots=True)
class _Received:
    """One batch message as it arrived, before validation. `payload_json` is the payload's
    compact JSON text when it is an object; `payload_given` is False when absent or null."""

    topic: Any
    event: Any
    private: Any
    id: Any
    payload_given: bool
    payload_json: str | None


class _WireMessage(msgspec.Struct):
    """A batch message as msgspec decodes it: the payload stays raw bytes; the other fields are
    checked by `_validate_batch`, like those of a body parsed the slow way."""

    topic: Any = None
    event: Any = None
    payload: msgspec.Raw = msgspec.Raw(b"null")
    private: Any = False
    id: Any = None


class _WireBatch(msgspec.Struct):
    messages: list[_WireMessage]


_decode_wire_batch = msgspec.json.Decoder(_WireBatch).decode


def _compact_object(raw: bytes) -> str:
    """The compact text of a JSON object, as `dumps(loads(raw))` would print it.

    Without string escapes, compacting the bytes gives that text while keeping the sender's
    spelling of numbers, at a twentieth of the cost of parsing into Python objects and printing
    them again (the hub's largest cost per cell in bench/RESULTS.md); escapes are normalized by
    the round trip, since `dumps` prints non-ASCII characters unescaped."""
    if b"\\" in raw:
        return dumps(loads(raw))
    return msgspec.json.format(raw, indent=-1).decode()


def _received_fast(body: bytes) -> list[_Received] | None:
    """The usual body, `{"messages": [{...}, ...]}`, without building its payloads as Python
    objects; None when the body is anything else (then `_received_slow` says what is wrong)."""
    try:
        batch = _decode_wire_batch(body)
    except msgspec.DecodeError:  # malformed JSON, or another shape (ValidationError)
        return None
    received = []
    for m in batch.messages:
        raw = bytes(m.payload)
        is_object = raw.startswith(b"{")
        received.append(
            _Received(
                m.topic,
                m.event,
                m.private,
                m.id,
                payload_given=raw != b"null",
                payload_json=_compact_object(raw) if is_object else None,
            )
        )
    return received


def _received_slow(body: Any) -> list[_Received | None] | dict[str, Any]:
    """Any parsed body: its messages (None for one that is not an object), or the errors."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return {"messages": ["can't be blank" if not messages else "is invalid"]}
    received: list[_Received | None] = []
    for raw in messages:
        if not isinstance(raw, dict):
            received.append(None)
            continue
        payload = raw.get("payload")
        received.append(
            _Received(
                raw.get("topic"),
                raw.get("event"),
                raw.get("private", False),
                raw.get("id"),
                payload_given=payload is not None,
                payload_json=dumps(payload) if isinstance(payload, dict) else None,
            )
        )
    return received


def _validate_batch(
    state: HubState, messages: Sequence[_Received | None]
) -> tuple[list[_Valid], dict[str, Any] | None]:
    """Ecto-style validation: per-message error maps, `{}` for the valid ones."""
    if not messages:
        return [], {"messages": ["can't be blank"]}
    per_message: list[dict[str, list[str]]] = []
    valid: list[_Valid] = []
    for message in messages:
        errors: dict[str, list[str]] = {}
        if message is None:
            per_message.append({"messages": ["is invalid"]})
            continue
        for field, value in (("topic", message.topic), ("event", message.event)):
            # Ecto casts a string of nothing but whitespace to nil, so it is blank too.
            if value is None or (isinstance(value, str) and not value.strip()):
                errors[field] = ["can't be blank"]
            elif not isinstance(value, str):
                errors[field] = ["is invalid"]
        payload_json = message.payload_json
        if not message.payload_given:
            errors["payload"] = ["can't be blank"]
        elif payload_json is None:
            errors["payload"] = ["is invalid"]
        elif state.limits.payload_too_large(len(payload_json.encode())):
            errors["payload"] = [_PAYLOAD_TOO_LARGE]
        private = message.private
        if private is None:
            private = False
        if isinstance(private, str) and private in ("true", "false"):
            private = private == "true"
        if not isinstance(private, bool):
            errors["private"] = ["is invalid"]
        msg_id = message.id
        if msg_id is not None:
            try:
                uuid.UUID(str(msg_id))
            except ValueError:
                errors["id"] = ["is invalid"]
        per_message.append(errors)
        if not errors:
            assert payload_json is not None
            valid.append(_Valid(message.topic, message.event, private, msg_id, payload_json))
    if any(per_message):
        return [], {"messages": per_message}
    return valid, None


def _received(body: bytes) -> list[_Received | None] | dict[str, Any] | None:
    """The body's messages, the errors of its shape, or None when it is not JSON."""
    if not body:
        return _received_slow({})  # Plug's JSON parser reads an empty body as `{}`
    fast = _received_fast(body)
    if fast is not None:
        return [*fast]
    try:
        return _received_slow(loads(body))
    except ValueError:
        return None


def _media_type(request: web.Request) -> MediaType | None:
    header = request.headers.get("content-type")
    return None if header is None else content_type(header)


async def batch_broadcast(request: web.Request) -> web.Response:
    """POST /api/broadcast `{"messages":[{topic, event, payload, private?, id?}]}`."""
    state = request.app[HUB_STATE]
    media = _media_type(request)
    if media is not None and media.is_json:
        received = _received(await request.read())
        if received is None:
            return _bad_request(state, request)
    else:
        # Not JSON (or no Content-Type): Plug.Parsers leaves the body unread, so the
        # controller sees no `messages` at all.
        received = _received_slow({})
    headers, limited = _rate_limit(state)
    if limited is not None:
        return limited
    claims = _authenticate(state, request)
    if claims is None:
        return _message(state, 401, "Unauthorized", headers)
    if isinstance(received, dict):
        return _errors(state, received, headers)
    messages, errors = _validate_batch(state, received)
    if errors is not None:
        return _errors(state, errors, headers)
    limit = state.limits.max_events
    if limit > 0:
        avg = state.limits.events.average()
        if avg > limit:
            return _message(state, 429, "You have exceeded your rate limit", headers)
        if len(messages) + avg > limit:
            return _message(
                state,
                429,
                "Too many messages to broadcast, please reduce the batch size",
                headers,
            )
    public: list[tuple[StreamKey, Outgoing]] = []
    private_topics: dict[str, list[_Valid]] = defaultdict(list)
    for message in messages:
        if message.private:
            private_topics[message.topic].append(message)
        else:
            public.append(_outgoing(message))
    if public:
        state.publish_batch(public)
    allowed: list[tuple[StreamKey, Outgoing]] = []
    dropped = 0
    forwarded = _forwarded_headers(request) if private_topics else {}
    for topic, group in private_topics.items():
        try:
            can_write = await state.authorizer.can_write(AuthContext(topic, claims, forwarded))
        except PolicyCheckFailed as exc:
            log.warning("hub.rest.policy_error", topic=topic, kind=exc.kind, error=str(exc))
            can_write = False
        if can_write:
            allowed.extend(_outgoing(message) for message in group)
        else:
            dropped += len(group)  # Realtime drops these silently and still answers 202
    if allowed:
        state.publish_batch(allowed)
    sent = len(public) + len(allowed)
    state.metrics.rest_messages.inc(sent)
    log.info(
        "hub.rest.broadcast", count=len(messages), sent=sent, dropped=dropped, role=claims.role
    )
    return web.Response(status=202, headers=headers)


def _outgoing(message: _Valid) -> tuple[StreamKey, Outgoing]:
    """The broadcast payload is `dumps({"event", "meta"?, "payload", "type"})`, composed from
    the payload's text encoded once at validation."""
    meta = "" if message.id is None else f',"meta":{{"id":{dumps(str(message.id))}}}'
    payload = (
        f'{{"event":{dumps(message.event)}{meta},"payload":{message.payload_json},'
        '"type":"broadcast"}'
    )
    key = (message.private, message.topic)
    return key, JsonBroadcast(f"realtime:{message.topic}", payload)


def _single_payload(media: MediaType | None, raw: bytes, event: str) -> UserPayload | None:
    """The payload as Plug.Parsers leaves it for the controller; None for malformed JSON.

    Without a Content-Type nothing is parsed: the body is ignored and the payload is `{}`. An
    empty JSON body is `{}` too, and a JSON value that is not an object arrives as
    `{"_json": value}`."""
    if media == _OCTET_STREAM:
        return UserPayload(event, "binary", raw)
    value: Any = {}
    if media is not None and media.is_json and raw:
        try:
            value = loads(raw)
        except ValueError:
            return None
        if not isinstance(value, dict):
            value = {"_json": value}
    return UserPayload(event, "json", dumps(value).encode())


async def single_broadcast(request: web.Request) -> web.Response:
    """POST /api/broadcast/{topic}/events/{event}[?private=true]; the body is the payload."""
    state = request.app[HUB_STATE]
    media = _media_type(request)
    raw = await request.read() if media is not None else b""
    topic, event = request.match_info["topic"], request.match_info["event"]
    user = _single_payload(media, raw, event)
    if user is None:
        return _bad_request(state, request)
    # ValidateBroadcastContentType: a missing header passes, any but these two is a 415.
    if "content-type" in request.headers and media not in (_JSON, _OCTET_STREAM):
        state.metrics.rest_rejected.labels("415").inc()
        return web.json_response({"error": _UNSUPPORTED_MEDIA}, status=415, headers=_CORS)
    headers, limited = _rate_limit(state)
    if limited is not None:
        return limited
    claims = _authenticate(state, request)
    if claims is None:
        return _message(state, 401, "Unauthorized", headers)
    private = request.query.get("private") == "true"
    if state.limits.payload_too_large(len(user.data)):
        return _errors(state, {"payload": [_PAYLOAD_TOO_LARGE]}, headers)
    if state.limits.events_tripped():
        return _message(state, 429, "You have exceeded your rate limit", headers)
    if private:
        try:
            allowed = await state.authorizer.can_write(_auth_context(request, topic, claims))
        except PolicyCheckFailed as exc:
            log.warning("hub.rest.policy_error", topic=topic, kind=exc.kind, error=str(exc))
            text = (
                "Tenant database unavailable" if exc.kind == "unavailable" else "RLS policy error"
            )
            return _message(state, 422, text, headers)
        if not allowed:
            return _message(state, 403, "Unauthorized", headers)
    state.limits.events.add(1)
    state.publish((private, topic), UserBroadcast(f"realtime:{topic}", user))
    state.metrics.rest_messages.inc()
    log.info("hub.rest.broadcast", count=1, sent=1, dropped=0, role=claims.role, single=True)
    return web.Response(status=202, headers=headers)
