"""Phoenix wire formats: vsn 1.0.0 (JSON objects) and vsn 2.0.0 (JSON arrays + binary kinds 3/4).

Outbound frames are returned as complete, unmasked websocket frames (RFC 6455 header included) so a
broadcast is encoded once per serializer version and the same bytes are written to every
subscriber's transport. Compression is never negotiated, which is what makes that possible.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from daemon.hub.vsn import Vsn, negotiate

Encoding = Literal["json", "binary"]

OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2

_KIND_USER_BROADCAST_PUSH: Final = 3
_KIND_USER_BROADCAST: Final = 4

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class FrameError(ValueError):
    """A client frame that does not follow the negotiated serializer."""


def dumps(value: Any) -> str:
    """Compact JSON, as Jason writes it."""
    return _dumps(value)


def loads(text: str | bytes) -> Any:
    """Parse JSON; ValueError when it is not."""
    return json.loads(text)


def ws_frame(opcode: int, data: bytes) -> bytes:
    """One final, unmasked server-to-client frame."""
    size = len(data)
    first = 0x80 | opcode
    if size < 126:
        header = bytes((first, size))
    elif size < 0x10000:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + data


@dataclass(frozen=True, slots=True)
class UserPayload:
    """A user broadcast carried as raw bytes (realtime-js kind 3, REST single)."""

    event: str
    encoding: Encoding
    data: bytes


@dataclass(frozen=True, slots=True)
class Inbound:
    """One decoded client message. `payload` is a JSON value or a UserPayload (kind 3)."""

    topic: str
    event: str
    payload: Any
    ref: str | None
    join_ref: str | None


def _opt_str(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    raise FrameError(f"{name} must be a string or null")


def decode_v1(text: str) -> Inbound:
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise FrameError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict) or "ref" not in obj:
        raise FrameError("expected an object with topic, event, payload and ref")
    topic, event = obj.get("topic"), obj.get("event")
    if not isinstance(topic, str) or not isinstance(event, str):
        raise FrameError("topic and event must be strings")
    return Inbound(
        topic,
        event,
        obj.get("payload"),
        _opt_str(obj["ref"], "ref"),
        _opt_str(obj.get("join_ref"), "join_ref"),
    )


def decode_v2_text(text: str) -> Inbound:
    try:
        arr = json.loads(text)
    except ValueError as exc:
        raise FrameError(f"not JSON: {exc}") from None
    if not isinstance(arr, list) or len(arr) < 5:
        raise FrameError("expected a V2 array [join_ref, ref, topic, event, payload]")
    join_ref, ref, topic, event, payload = arr[:5]
    if not isinstance(topic, str) or not isinstance(event, str):
        raise FrameError("topic and event must be strings")
    return Inbound(topic, event, payload, _opt_str(ref, "ref"), _opt_str(join_ref, "join_ref"))


def decode_v2_binary(data: bytes) -> Inbound:
    """Only kind 3 (user broadcast push) is sent by clients."""
    if len(data) < 7 or data[0] != _KIND_USER_BROADCAST_PUSH:
        raise FrameError("unsupported binary frame (only kind 3, user broadcast push, is accepted)")
    join_ref_len, ref_len, topic_len, event_len, meta_len, encoding = data[1:7]
    offset = 7
    fields: list[str] = []
    try:
        for size in (join_ref_len, ref_len, topic_len, event_len, meta_len):
            if offset + size > len(data):
                raise FrameError("binary frame shorter than its header says")
            fields.append(data[offset : offset + size].decode())
            offset += size
    except UnicodeDecodeError:
        raise FrameError("binary frame header is not UTF-8") from None
    join_ref, ref, topic, event, _metadata = fields
    user = UserPayload(event, "json" if encoding == 1 else "binary", bytes(data[offset:]))
    return Inbound(topic, "broadcast", user, ref or None, join_ref or None)


class Serializer(Protocol):
    vsn: Vsn

    def decode(self, data: str | bytes) -> Inbound: ...

    def reply(
        self, join_ref: str | None, ref: str | None, topic: str, status: str, response: Any
    ) -> bytes: ...

    def push(self, join_ref: str | None, topic: str, event: str, payload: Any) -> bytes: ...

    def close(self, join_ref: str | None, topic: str, event: str) -> bytes:
        """phx_close / phx_error style frames: ref = join_ref, empty payload."""
        ...

    def broadcast(self, topic: str, payload_json: str) -> bytes: ...

    def user_broadcast(self, topic: str, user: UserPayload, metadata: str | None) -> bytes | None:
        """None when this serializer cannot carry the message (binary payloads on V1)."""
        ...


class V1Serializer:
    """`{"topic","event","payload","ref"}`; join_ref is never sent, ref is always present."""

    vsn: Vsn = "1.0.0"

    def decode(self, data: str | bytes) -> Inbound:
        if isinstance(data, bytes):
            raise FrameError("vsn 1.0.0 takes text frames only")
        return decode_v1(data)

    def _frame(self, topic: str, event: str, payload_json: str, ref: str | None) -> bytes:
        text = (
            f'{{"topic":{dumps(topic)},"event":{dumps(event)},"payload":{payload_json},'
            f'"ref":{dumps(ref)}}}'
        )
        return ws_frame(OP_TEXT, text.encode())

    def reply(
        self, join_ref: str | None, ref: str | None, topic: str, status: str, response: Any
    ) -> bytes:
        return self._frame(topic, "phx_reply", dumps({"status": status, "response": response}), ref)

    def push(self, join_ref: str | None, topic: str, event: str, payload: Any) -> bytes:
        return self._frame(topic, event, dumps(payload), None)

    def close(self, join_ref: str | None, topic: str, event: str) -> bytes:
        return self._frame(topic, event, "{}", join_ref)

    def broadcast(self, topic: str, payload_json: str) -> bytes:
        return self._frame(topic, "broadcast", payload_json, None)

    def user_broadcast(self, topic: str, user: UserPayload, metadata: str | None) -> bytes | None:
        if user.encoding != "json":
            return None
        meta = f',"meta":{metadata}' if metadata else ""
        payload = (
            f'{{"event":{dumps(user.event)}{meta},"payload":{user.data.decode()},'
            f'"type":"broadcast"}}'
        )
        return self.broadcast(topic, payload)


class V2Serializer:
    """`[join_ref, ref, topic, event, payload]` text frames; user broadcasts as binary kind 4."""

    vsn: Vsn = "2.0.0"

    def decode(self, data: str | bytes) -> Inbound:
        if isinstance(data, bytes):
            return decode_v2_binary(data)
        return decode_v2_text(data)

    @staticmethod
    def _frame(
        join_ref: str | None, ref: str | None, topic: str, event: str, payload_json: str
    ) -> bytes:
        text = f"[{dumps(join_ref)},{dumps(ref)},{dumps(topic)},{dumps(event)},{payload_json}]"
        return ws_frame(OP_TEXT, text.encode())

    def reply(
        self, join_ref: str | None, ref: str | None, topic: str, status: str, response: Any
    ) -> bytes:
        payload = dumps({"status": status, "response": response})
        return self._frame(join_ref, ref, topic, "phx_reply", payload)

    def push(self, join_ref: str | None, topic: str, event: str, payload: Any) -> bytes:
        return self._frame(join_ref, None, topic, event, dumps(payload))

    def close(self, join_ref: str | None, topic: str, event: str) -> bytes:
        return self._frame(join_ref, join_ref, topic, event, "{}")

    def broadcast(self, topic: str, payload_json: str) -> bytes:
        return self._frame(None, None, topic, "broadcast", payload_json)

    def user_broadcast(self, topic: str, user: UserPayload, metadata: str | None) -> bytes | None:
        topic_b, event_b = topic.encode(), user.event.encode()
        meta_b = metadata.encode() if metadata else b""
        if max(len(topic_b), len(event_b), len(meta_b)) > 255:
            return None
        header = bytes(
            (
                _KIND_USER_BROADCAST,
                len(topic_b),
                len(event_b),
                len(meta_b),
                1 if user.encoding == "json" else 0,
            )
        )
        return ws_frame(OP_BINARY, header + topic_b + event_b + meta_b + user.data)


SERIALIZERS: Final[dict[str, Serializer]] = {
    "1.0.0": V1Serializer(),
    "2.0.0": V2Serializer(),
}


def serializer_for(vsn: str | None) -> Serializer | None:
    """The serializer Phoenix negotiates for this `vsn` query parameter (see `vsn.negotiate`)."""
    chosen = negotiate(vsn)
    return None if chosen is None else SERIALIZERS[chosen]
