"""Pure parts of the hub: frame encoding, binary decoding, token verification, rolling rates."""

from __future__ import annotations

from collections.abc import Callable

import jwt
import pytest

from daemon.config import HubSettings
from daemon.hub.auth import Claims, TokenRejected, TokenVerifier, bearer_token, verify_token
from daemon.hub.limits import Limits, RollingRate
from daemon.hub.serializers import (
    FrameError,
    UnservedFrame,
    decode_v1,
    decode_v2_binary,
    decode_v2_text,
    serializer_for,
    ws_frame,
)
from daemon.hub.vsn import Version, negotiate, parse_version

SECRET = "s" * 40


@pytest.mark.parametrize(("size", "header"), [(5, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)])
def test_ws_frame_length_encodings(size: int, header: int) -> None:
    frame = ws_frame(1, b"x" * size)
    assert frame[0] == 0x81
    assert len(frame) == header + size


def test_kind3_decoding_and_truncation() -> None:
    frame = bytes((3, 1, 1, 6, 1, 0, 1)) + b"12topic1e" + b'{"a":1}'
    msg = decode_v2_binary(frame)
    assert (msg.join_ref, msg.ref, msg.topic, msg.event) == ("1", "2", "topic1", "broadcast")
    assert msg.payload.event == "e"
    assert msg.payload.encoding == "json"
    assert msg.payload.data == b'{"a":1}'
    with pytest.raises(FrameError):
        decode_v2_binary(frame[:9])
    with pytest.raises(FrameError):
        decode_v2_binary(bytes((4, 0, 0, 0, 0, 0, 0)))


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ("{", FrameError),
        ("[]", FrameError),
        ('{"topic":"t","event":"e","ref":null}', FrameError),  # no payload key
        ('{"topic":"t","event":"e","payload":{}}', FrameError),  # no ref key
        ('{"topic":"t","event":"e","payload":NaN,"ref":null}', FrameError),
        (b'\xff{"topic":"t"}', FrameError),
        ('{"topic":1,"event":"e","payload":{},"ref":null}', UnservedFrame),
        ('{"topic":"t","event":"e","payload":{},"ref":{}}', UnservedFrame),
    ],
)
def test_v1_frames_phoenix_cannot_decode_and_frames_the_hub_ignores(
    frame: str | bytes, error: type[Exception]
) -> None:
    with pytest.raises(error):
        decode_v1(frame)


def test_v1_decodes_binary_frames_as_text_like_phoenix() -> None:
    msg = decode_v1(b'{"topic":"t","event":"e","payload":[1],"ref":"1"}')
    assert (msg.topic, msg.event, msg.payload, msg.ref) == ("t", "e", [1], "1")


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (b"", FrameError),
        (bytes((9, 0, 0, 0, 0)), FrameError),
        (bytes((0, 0, 0, 9, 0)) + b"t", FrameError),  # kind 0, shorter than its header says
        (bytes((0, 0, 0, 1, 1)) + b"te" + b"data", UnservedFrame),  # kind 0, well formed
        (bytes((3, 0, 0, 1, 1, 2, 1)) + b"te{x" + b"{}", FrameError),  # metadata not JSON
        (bytes((3, 0, 0, 1, 1, 0, 1)) + b"\xffe" + b"{}", UnservedFrame),
    ],
)
def test_v2_binary_frames_phoenix_cannot_decode(frame: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_v2_binary(frame)
    with pytest.raises(FrameError):
        decode_v2_text('{"not": "an array"}')


def test_serializer_negotiation() -> None:
    assert serializer_for(None).vsn == "1.0.0"  # type: ignore[union-attr]
    assert serializer_for("2.0.0").vsn == "2.0.0"  # type: ignore[union-attr]
    assert serializer_for("9.0.0") is None


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("1.0.0", Version(1, 0, 0, ())),
        ("1.0.1-rc.1+b", Version(1, 0, 1, ("rc", "1"))),
        ("1.0", None),
        ("", None),
        ("1.0.0-", None),
        ("1.0.0+", None),
        ("1.00.0", None),
        ("1.0.0-01", None),
        ("1.0.0-a_b", None),
        ("1.0.0.0", None),
        ("1" * 15 + ".0.0", None),
    ],
)
def test_versions_parse_as_elixir_parses_them(text: str, parsed: Version | None) -> None:
    assert parse_version(text) == parsed


@pytest.mark.parametrize(
    ("vsn", "chosen"),
    [
        (None, "1.0.0"),
        ("1.0.9", "1.0.0"),
        ("1.0.1-dev", "1.0.0"),
        ("1.0.0-dev", None),  # below 1.0.0
        ("2.0.0", "2.0.0"),
        ("2.1.0", None),
        ("", None),
    ],
)
def test_vsn_negotiation_follows_tilde_requirements(vsn: str | None, chosen: str | None) -> None:
    assert negotiate(vsn) == chosen


Verify = Callable[..., Claims]
_cached = TokenVerifier(SECRET)
VERIFIERS: dict[str, Verify] = {
    "verify_token": lambda token, now=None: verify_token(token, SECRET, now=now),
    # One verifier for every case and both rounds: what it remembers must not change an answer.
    "TokenVerifier": lambda token, now=None: _cached.verify(token, now=now),
}


@pytest.mark.parametrize("name", VERIFIERS)
@pytest.mark.parametrize("round_", [1, 2])
def test_verify_token_problems(name: str, round_: int) -> None:
    verify = VERIFIERS[name]
    now = 1_000_000
    ok = jwt.encode({"role": "anon", "exp": now + 10}, SECRET)
    assert verify(ok, now=now).role == "anon"
    assert verify(f" {ok[:10]}\n{ok[10:]} ", now=now).role == "anon"
    cases = {
        jwt.encode({"role": "anon", "exp": now - 7}, SECRET): (
            "expired",
            "Token has expired 7 seconds ago",
        ),
        jwt.encode({"exp": now + 10}, SECRET): (
            "missing_claims",
            "Fields `role` and `exp` are required in JWT",
        ),
        jwt.encode({"role": "anon", "exp": now + 10}, "other" * 10): (
            "signature",
            "Failed to validate JWT signature",
        ),
        "garbage": ("malformed", "The token provided is not a valid JWT"),
        jwt.encode({"role": "anon", "exp": "soon"}, SECRET): (
            "invalid_exp",
            "Token expiration time is invalid",
        ),
    }
    for token, (problem, message) in cases.items():
        with pytest.raises(TokenRejected) as rejected:
            verify(token, now=now)
        assert rejected.value.problem == problem
        assert rejected.value.message == message
    with pytest.raises(TokenRejected) as missing:
        verify(None)
    assert missing.value.connect_error == (401, "API key is missing")


def test_a_remembered_token_still_expires_and_the_memory_is_bounded() -> None:
    verifier = TokenVerifier(SECRET, size=2)
    now = 1_000_000
    token = jwt.encode({"role": "anon", "exp": now + 10}, SECRET)
    assert verifier.verify(token, now=now).role == "anon"
    with pytest.raises(TokenRejected) as later:
        verifier.verify(token, now=now + 11)
    assert later.value.problem == "expired"
    others = [jwt.encode({"role": f"r{n}", "exp": now + 10}, SECRET) for n in range(5)]
    assert [verifier.verify(t, now=now).role for t in others] == [f"r{n}" for n in range(5)]
    assert len(verifier) == 2
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(TokenRejected) as bad:
        verifier.verify(forged, now=now)
    assert bad.value.problem in ("signature", "malformed")


def test_bearer_token_prefers_authorization() -> None:
    assert bearer_token("Bearer a", "b") == "a"
    assert bearer_token("bearer a", None) == "a"
    assert bearer_token(None, "b") == "b"
    assert bearer_token(None, None) is None


def test_rolling_rate_forgets_old_buckets() -> None:
    now = [0.0]
    rate = RollingRate(12.0, clock=lambda: now[0])
    rate.add(24)
    assert rate.average() == 2.0
    now[0] = 6.0
    rate.add(12)
    assert rate.average() == 3.0
    now[0] = 12.5  # the first bucket (t in [0, 1)) has left the window
    assert rate.average() == 1.0
    now[0] = 100.0
    assert rate.average() == 0.0


def test_limits_off_by_default_and_payload_threshold() -> None:
    limits = Limits(HubSettings())
    limits.events.add(10_000)
    assert not limits.events_tripped()
    assert not limits.payload_too_large(3000 * 1000 + 500)
    assert limits.payload_too_large(3000 * 1000 + 501)
