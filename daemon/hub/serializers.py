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

_KIND_PUSH: Final = 0
_KIND_USER_BROADCAST_PUSH: Final = 3
_KIND_USER_BROADCAST: Final = 4

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class FrameError(ValueError):
    """A client frame the negotiated Phoenix serializer cannot decode.

    Phoenix's `decode!` raises on it and the socket process dies; Cowboy then closes the
    websocket with 1011 (internal error), so the hub closes the same way."""


class UnservedFrame(ValueError):
    """A frame Phoenix decodes but the hub cannot act on (a kind 0 binary push, a topic that
    is not a string): logged and ignored."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def dumps(value: Any) -> str:
    """Compact JSON, as Jason writes it."""
    return _dumps(value)


def loads(text: str | bytes) -> Any:
    """Parse JSON as Jason does (NaN and Infinity are not JSON); ValueError when it is not."""
    return json.loads(text, parse_constant=_no_constant)


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
    raise UnservedFrame(f"{name} must be a string or null")


def _routable(topic: Any, event: Any) -> tuple[str, str]:
    if not isinstance(topic, str) or not isinstance(event, str):
        raise UnservedFrame("topic and event must be strings")
    return topic, event


def decode_v1(text: str | bytes) -> Inbound:
    """Phoenix's V1 `decode!`: a JSON object with the keys topic, event, payload and ref
    (join_ref optional). The frame's opcode is not looked at, so binary frames count too."""
    try:
        obj = loads(text.decode() if isinstance(text, bytes) else text)
    except ValueError as exc:  # UnicodeDecodeError included
        raise FrameError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise FrameError("expected a JSON object")
    missing = [key for key in ("topic", "event", "payload", "ref") if key not in obj]
    if missing:
        raise FrameError(f"missing key {missing[0]!r}")
    topic, event = _routable(obj["topic"], obj["event"])
    return Inbound(
        topic,
        event,
        obj["payload"],
        _opt_str(obj["ref"], "ref"),
        _opt_str(obj.get("join_ref"), "join_ref"),
    )


def decode_v2_text(text: str) -> Inbound:
    try:
        arr = loads(text)
    except ValueError as exc:
        raise FrameError(f"not JSON: {exc}") from None
    if not isinstance(arr, list) or len(arr) < 5:
        raise FrameError("expected a V2 array [join_ref, ref, topic, event, payload]")
    join_ref, ref, topic, event, payload = arr[:5]
    topic, event = _routable(topic, event)
    return Inbound(topic, event, payload, _opt_str(ref, "ref"), _opt_str(join_ref, "join_ref"))


def _fields(data: bytes, offset: int, sizes: tuple[int, ...]) -> tuple[list[bytes], int]:
    """The length-prefixed fields after a binary header; FrameError when the frame is short."""
    fields = []
    for size in sizes:
        if offset + size > len(data):
            raise FrameError("binary frame shorter than its header says")
        fields.append(data[offset : offset + size])
        offset += size
    return fields, offset


def decode_v2_binary(data: bytes) -> Inbound:
    """Realtime's V2 binary decoding: kind 3 (user broadcast push, what realtime-js sends) is
    served; kind 0 (push) decodes but is not served; anything else cannot be decoded."""
    kind = data[0] if data else None
    if kind == _KIND_PUSH and len(data) >= 5:
        _fields(data, 5, tuple(data[1:5]))
        raise UnservedFrame("binary kind 0 (push) is not served")
    if kind != _KIND_USER_BROADCAST_PUSH or len(data) < 7:
        raise FrameError("binary frame of no known kind (0 push, 3 user broadcast push)")
    encoding = data[6]
    raw, offset = _fields(data, 7, tuple(data[1:6]))
    if raw[4]:
        try:
            loads(raw[4].decode())
        except ValueError:
            raise FrameError("binary frame metadata is not JSON") from None
    try:
        join_ref, ref, topic, event = (field.decode() for field in raw[:4])
    except UnicodeDecodeError:
        raise UnservedFrame("binary frame header is not UTF-8") from None
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
