"""The channel registry and fan-out.

A stream is (private, name): public and private channels of the same name never see each other's
messages, as in Realtime (`<tenant>:<name>` vs `<tenant>-private:<name>`). A message is encoded at
most once per serializer version and the same frame bytes are written to every subscriber.
"""

from __future__ import annotations

from typing import Protocol

from daemon.hub.serializers import Serializer, UserPayload

StreamKey = tuple[bool, str]


class Subscriber(Protocol):
    """A joined channel on one socket."""

    serializer: Serializer
    topic: str  # the joined topic, `realtime:<name>`

    def deliver(self, frame: bytes) -> None: ...

    def shutdown(self, message: str) -> None:
        """Close the channel with a `system` error (Realtime's channel shutdown)."""
        ...


class Outgoing:
    """A message headed for a stream, encoded lazily and only once per serializer version."""

    __slots__ = ("_frames", "topic")

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._frames: dict[str, bytes | None] = {}

    def frame(self, serializer: Serializer) -> bytes | None:
        try:
            return self._frames[serializer.vsn]
        except KeyError:
            frame = self._frames[serializer.vsn] = self._encode(serializer)
            return frame

    def _encode(self, serializer: Serializer) -> bytes | None:
        raise NotImplementedError


class JsonBroadcast(Outgoing):
    """A Phoenix broadcast whose payload is a JSON object: `{"type","event","payload",...}`."""

    __slots__ = ("payload_json",)

    def __init__(self, topic: str, payload_json: str) -> None:
        super().__init__(topic)
        self.payload_json = payload_json

    def _encode(self, serializer: Serializer) -> bytes | None:
        return serializer.broadcast(self.topic, self.payload_json)


class UserBroadcast(Outgoing):
    """A user broadcast carried as bytes: kind 4 for vsn 2, converted (JSON only) for vsn 1."""

    __slots__ = ("metadata", "user")

    def __init__(self, topic: str, user: UserPayload, metadata: str | None = None) -> None:
        super().__init__(topic)
        self.user = user
        self.metadata = metadata

    def _encode(self, serializer: Serializer) -> bytes | None:
        return serializer.user_broadcast(self.topic, self.user, self.metadata)


class Registry:
    """Streams -> subscribers. Snapshots are rebuilt on join/leave so fan-out never copies."""

    def __init__(self) -> None:
        self._streams: dict[StreamKey, tuple[Subscriber, ...]] = {}

    def subscribe(self, key: StreamKey, subscriber: Subscriber) -> None:
        self._streams[key] = (*self._streams.get(key, ()), subscriber)

    def unsubscribe(self, key: StreamKey, subscriber: Subscriber) -> None:
        remaining = tuple(s for s in self._streams.get(key, ()) if s is not subscriber)
        if remaining:
            self._streams[key] = remaining
        else:
            self._streams.pop(key, None)

    def subscribers(self, key: StreamKey) -> tuple[Subscriber, ...]:
        return self._streams.get(key, ())

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    def publish(
        self, key: StreamKey, message: Outgoing, *, exclude: Subscriber | None = None
    ) -> int:
        """Write the message to every subscriber of the stream but `exclude`; returns how many."""
        count = 0
        serializer: Serializer | None = None
        frame: bytes | None = None
        for subscriber in self._streams.get(key, ()):
            if subscriber is exclude:
                continue
            if subscriber.serializer is not serializer:
                serializer = subscriber.serializer
                frame = message.frame(serializer)
            if frame is not None:
                subscriber.deliver(frame)
                count += 1
        return count

    def receivers(
        self, key: StreamKey, message: Outgoing, *, exclude: Subscriber | None = None
    ) -> list[Subscriber]:
        """The subscribers `publish` writes the message to (for the rare callers that need them)."""
        return [
            subscriber
            for subscriber in self._streams.get(key, ())
            if subscriber is not exclude and message.frame(subscriber.serializer) is not None
        ]
