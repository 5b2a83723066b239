"""SendGrid's signed Event Webhook: real P-256 keys and signatures, made as SendGrid makes them."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from channels.callbacks.sendgrid_events import (
    SIGNATURE_HEADER,
    SUPPRESSING_EVENTS,
    TIMESTAMP_HEADER,
    EmailEvent,
    InvalidPublicKey,
    is_suppressing,
    load_public_key,
    parse_events,
    verify_event_signature,
)

NOW = 1_717_000_000


class SendGridSigner:
    """Plays SendGrid: a P-256 key pair; signs ``timestamp + body`` with ECDSA SHA-256, DER, base64."""

    def __init__(self) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode("ascii")
        """As the SendGrid console shows it: base64 DER SubjectPublicKeyInfo, no PEM armour."""

    def sign(self, payload: bytes, timestamp: str) -> str:
        signature = self.private_key.sign(timestamp.encode("utf-8") + payload, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signature).decode("ascii")

    def headers(self, payload: bytes, timestamp: int) -> dict[str, str]:
        stamp = str(timestamp)
        return {SIGNATURE_HEADER: self.sign(payload, stamp), TIMESTAMP_HEADER: stamp}


@pytest.fixture(scope="module")
def signer() -> SendGridSigner:
    return SendGridSigner()


# A realistic delivery: processed, deferred, delivered, then engagement and suppression events, with the
# custom args channels.sendgrid attaches (SendGrid echoes them as top-level fields) and one event for
# mail Tocsin did not send.
EVENTS: list[dict[str, object]] = [
    {
        "email": "ada@example.com",
        "timestamp": NOW - 60,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": "processed",
        "category": ["tocsin", "incident-7"],
        "sg_event_id": "rbtnWrG1DVDGGGFHFyun0A==",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "tocsin_delivery_id": "101",
        "tocsin_update_id": "7",
    },
    {
        "email": "ada@example.com",
        "timestamp": NOW - 50,
        "event": "deferred",
        "response": "400 try again later",
        "attempt": "1",
        "sg_event_id": "qK1MxfAaE_ukyyNsjxTpkw==",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "tocsin_delivery_id": "101",
    },
    {
        "email": "ada@example.com",
        "timestamp": NOW - 40,
        "event": "delivered",
        "response": "250 OK",
        "ip": "168.1.1.1",
        "tls": 1,
        "sg_event_id": "hqFbp3HH9WxIM0R2-x2M1Q==",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "tocsin_delivery_id": "101",
    },
    {
        "email": "bob@example.com",
        "timestamp": NOW - 30,
        "event": "bounce",
        "type": "bounce",
        "bounce_classification": "Invalid Address",
        "status": "5.1.1",
        "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
        "sg_event_id": "Ym91bmNlLTAtMTIzNA==",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.1",
        "tocsin_delivery_id": "102",
    },
    {
        "email": "carol@example.com",
        "timestamp": NOW - 20,
        "event": "bounce",
        "type": "blocked",
        "bounce_classification": "Reputation",
        "status": "5.7.1",
        "reason": "550 5.7.1 Service unavailable; client host blocked",
        "sg_event_id": "Ym91bmNlLTEtNTY3OA==",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.2",
        "tocsin_delivery_id": 103,
    },
    {
        "email": "dan@example.com",
        "timestamp": NOW - 10,
        "event": "dropped",
        "reason": "Bounced Address",
        "sg_event_id": "ZHJvcHBlZC0x",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.3",
        "tocsin_delivery_id": "104",
    },
    {
        "email": "erin@example.com",
        "timestamp": NOW - 5,
        "event": "group_unsubscribe",
        "asm_group_id": 42,
        "sg_event_id": "Z3JvdXAtdW5zdWI=",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.4",
        "tocsin_delivery_id": "105",
    },
    {"email": "frank@example.com", "timestamp": NOW, "event": "spamreport", "sg_event_id": "c3BhbQ=="},
]


def body(events: object = EVENTS) -> bytes:
    return json.dumps(events, separators=(",", ":")).encode()


# --- signature ---------------------------------------------------------------------------------------


def test_valid_signature_verifies(signer: SendGridSigner) -> None:
    payload = body()
    h = signer.headers(payload, NOW)
    assert verify_event_signature(
        signer.public_key, payload, h[SIGNATURE_HEADER], h[TIMESTAMP_HEADER], now=NOW
    )


def test_pre_loaded_key_verifies_too(signer: SendGridSigner) -> None:
    payload = body()
    h = signer.headers(payload, NOW)
    key = load_public_key(signer.public_key)
    assert verify_event_signature(key, payload, h[SIGNATURE_HEADER], h[TIMESTAMP_HEADER], now=NOW)


def test_non_ascii_body_verifies(signer: SendGridSigner) -> None:
    payload = json.dumps([{"email": "zoë@exämple.com", "event": "open", "timestamp": NOW}]).encode()
    payload = payload.replace(b"\\u00eb", "ë".encode()).replace(b"\\u00e4", "ä".encode())
    assert "ë".encode() in payload
    h = signer.headers(payload, NOW)
    assert verify_event_signature(
        signer.public_key, payload, h[SIGNATURE_HEADER], h[TIMESTAMP_HEADER], now=NOW
    )


def test_signature_from_another_key_is_rejected(signer: SendGridSigner) -> None:
    forger = SendGridSigner()
    payload = body()
    h = forger.headers(payload, NOW)
    assert not verify_event_signature(
        signer.public_key, payload, h[SIGNATURE_HEADER], h[TIMESTAMP_HEADER], now=NOW
    )


def test_tampered_payload_is_rejected(signer: SendGridSigner) -> None:
    payload = body()
    h = signer.headers(payload, NOW)
    tampered = payload.replace(b'"event":"bounce","type":"blocked"', b'"event":"bounce","type":"bounce"')
    assert tampered != payload
    assert not verify_event_signature(
        signer.public_key, tampered, h[SIGNATURE_HEADER], h[TIMESTAMP_HEADER], now=NOW
    )
    # Re-serialising the JSON (even equivalently) breaks the signature: verify the raw body only.
    reformatted = json.dumps(json.loads(payload)).encode()
    assert not verify_event_signature(
        signer.public_key, reformatted, h[SIGNATURE_HEADER], h[TIMESTAMP_HEADER], now=NOW
    )


def test_tampered_timestamp_is_rejected(signer: SendGridSigner) -> None:
    payload = body()
    h = signer.headers(payload, NOW - 3600)
    # A replayer moving the timestamp header forward to look fresh breaks the signature.
    assert not verify_event_signature(signer.public_key, payload, h[SIGNATURE_HEADER], str(NOW), now=NOW)


def test_stale_and_future_timestamps_are_rejected(signer: SendGridSigner) -> None:
    payload = body()
    for stamp, ok in [
        (NOW - 300, True),
        (NOW + 300, True),
        (NOW - 301, False),
        (NOW + 301, False),
        (NOW - 86_400, False),
    ]:
        h = signer.headers(payload, stamp)
        verdict = verify_event_signature(
            signer.public_key, payload, h[SIGNATURE_HEADER], h[TIMESTAMP_HEADER], now=NOW
        )
        assert verdict is ok, stamp
    h = signer.headers(payload, NOW - 1000)
    assert verify_event_signature(
        signer.public_key, payload, h[SIGNATURE_HEADER], h[TIMESTAMP_HEADER], now=NOW, tolerance=1000
    )


def test_default_now_is_the_wall_clock(signer: SendGridSigner) -> None:
    import time

    payload = body()
    fresh = signer.headers(payload, int(time.time()))
    assert verify_event_signature(
        signer.public_key, payload, fresh[SIGNATURE_HEADER], fresh[TIMESTAMP_HEADER]
    )
    old = signer.headers(payload, NOW)  # 2024: long stale
    assert not verify_event_signature(
        signer.public_key, payload, old[SIGNATURE_HEADER], old[TIMESTAMP_HEADER]
    )


@pytest.mark.parametrize(
    "signature",
    ["", "not base64!!", base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode(), "QUJD"],
)
def test_garbage_signature_is_rejected_not_raised(signer: SendGridSigner, signature: str) -> None:
    assert not verify_event_signature(signer.public_key, body(), signature, str(NOW), now=NOW)


FULLWIDTH_STAMP = "\uff11\uff17\uff11\uff17\uff10\uff10\uff10\uff10\uff10\uff10"  # str.isdigit() says yes


@pytest.mark.parametrize("timestamp", ["", "abc", "1717000000.5", "-1717000000", FULLWIDTH_STAMP, "9" * 30])
def test_malformed_timestamp_is_rejected(signer: SendGridSigner, timestamp: str) -> None:
    payload = body()
    signature = signer.sign(payload, timestamp)  # even correctly signed
    assert not verify_event_signature(signer.public_key, payload, signature, timestamp, now=NOW)


def test_non_utf8_body_is_rejected(signer: SendGridSigner) -> None:
    payload = b"[\xff]"
    h = signer.headers(payload, NOW)
    assert not verify_event_signature(
        signer.public_key, payload, h[SIGNATURE_HEADER], h[TIMESTAMP_HEADER], now=NOW
    )


def test_bad_configured_key_is_a_clear_error(signer: SendGridSigner) -> None:
    payload = body()
    h = signer.headers(payload, NOW)
    with pytest.raises(InvalidPublicKey, match="not a base64 DER public key"):
        verify_event_signature("not-a-key", payload, h[SIGNATURE_HEADER], h[TIMESTAMP_HEADER], now=NOW)
    with pytest.raises(InvalidPublicKey, match="empty"):
        load_public_key("  ")
    pem = f"-----BEGIN PUBLIC KEY-----\n{signer.public_key}\n-----END PUBLIC KEY-----"
    with pytest.raises(InvalidPublicKey, match="without the"):
        load_public_key(pem)
    rsa_der = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(InvalidPublicKey, match="must be an ECDSA key"):
        load_public_key(base64.b64encode(rsa_der).decode())


def test_key_with_line_breaks_is_accepted(signer: SendGridSigner) -> None:
    wrapped = "\n".join(signer.public_key[i : i + 64] for i in range(0, len(signer.public_key), 64))
    payload = body()
    h = signer.headers(payload, NOW)
    assert verify_event_signature(wrapped, payload, h[SIGNATURE_HEADER], h[TIMESTAMP_HEADER], now=NOW)


# --- parsing -----------------------------------------------------------------------------------------


def test_parse_realistic_payload() -> None:
    events = parse_events(body())
    assert [(e.email, e.event, e.delivery_id) for e in events] == [
        ("ada@example.com", "processed", 101),
        ("ada@example.com", "deferred", 101),
        ("ada@example.com", "delivered", 101),
        ("bob@example.com", "bounce", 102),
        ("carol@example.com", "bounce", 103),
        ("dan@example.com", "dropped", 104),
        ("erin@example.com", "group_unsubscribe", 105),
        ("frank@example.com", "spamreport", None),
    ]
    processed = events[0]
    assert processed == EmailEvent(
        email="ada@example.com",
        event="processed",
        sg_message_id="14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        timestamp=NOW - 60,
        delivery_id=101,
        reason=None,
        type=None,
        sg_event_id="rbtnWrG1DVDGGGFHFyun0A==",
    )
    assert processed.x_message_id == "14c5d75ce93"
    assert events[1].reason == "400 try again later"  # deferred: the SMTP response
    assert events[3].reason == "550 5.1.1 The email account that you tried to reach does not exist."
    assert events[3].type == "bounce"
    assert events[4].type == "blocked"
    assert events[5].reason == "Bounced Address"
    assert events[7].sg_message_id is None
    assert events[7].x_message_id is None


def test_empty_array_is_no_events() -> None:
    assert parse_events(b"[]") == []


def test_suppression() -> None:
    by_email = {e.email: e for e in parse_events(body())}
    assert is_suppressing(by_email["bob@example.com"])  # hard bounce
    assert not is_suppressing(by_email["carol@example.com"])  # blocked: soft, the address is fine
    assert is_suppressing(by_email["dan@example.com"])  # dropped
    assert is_suppressing(by_email["erin@example.com"])  # group_unsubscribe
    assert is_suppressing(by_email["frank@example.com"])  # spamreport
    assert not any(is_suppressing(e) for e in parse_events(body()) if e.email == "ada@example.com")
    legacy_bounce = parse_events(body([{"email": "x@example.com", "event": "bounce", "timestamp": NOW}]))[0]
    assert is_suppressing(legacy_bounce)  # no type: an older payload, a hard bounce
    assert {"bounce", "dropped", "spamreport", "unsubscribe", "group_unsubscribe"} == SUPPRESSING_EVENTS
    unsub = parse_events(body([{"email": "y@example.com", "event": "unsubscribe", "timestamp": NOW}]))[0]
    assert is_suppressing(unsub)
    click = parse_events(body([{"email": "y@example.com", "event": "click", "timestamp": NOW}]))[0]
    assert not is_suppressing(click)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "not valid JSON"),
        (b"[{", "not valid JSON"),
        (b"\xff\xfe[", "not UTF-8|not valid JSON"),
        (b'{"email": "a@example.com", "event": "open", "timestamp": 1}', "must be a JSON array.*an object"),
        (b"null", "must be a JSON array.*null"),
        (b'"events"', "must be a JSON array.*a string"),
        (b"[1]", r"event #0 must be a JSON object, got a number"),
        (b'[{"event": "open", "timestamp": 1}]', r"event #0: 'email' must be a non-empty string"),
        (b'[{"email": "", "event": "open", "timestamp": 1}]', r"'email' must be a non-empty string"),
        (b'[{"email": "a@example.com", "timestamp": 1}]', r"'event' must be a non-empty string"),
        (
            b'[{"email": "a@example.com", "event": "open"}]',
            r"event #0 \(open\): 'timestamp' must be an integer",
        ),
        (
            b'[{"email": "a@example.com", "event": "open", "timestamp": "1"}]',
            "'timestamp' must be an integer",
        ),
        (
            b'[{"email": "a@example.com", "event": "open", "timestamp": true}]',
            "'timestamp' must be an integer",
        ),
        (
            b'[{"email": "a@example.com", "event": "open", "timestamp": 1, "sg_message_id": 5}]',
            "'sg_message_id' must be a string, got a number",
        ),
        (
            b'[{"email": "a@example.com", "event": "open", "timestamp": 1}, '
            b'{"email": "b@example.com", "event": "open", "timestamp": 1, "tocsin_delivery_id": "x1"}]',
            r"event #1: 'tocsin_delivery_id' must be a positive integer, got 'x1'",
        ),
        (
            b'[{"email": "a@example.com", "event": "open", "timestamp": 1, "tocsin_delivery_id": "-3"}]',
            "'tocsin_delivery_id' must be a positive integer",
        ),
    ],
)
def test_malformed_body_is_a_clear_value_error(payload: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_events(payload)


def test_float_timestamp_with_integer_value_is_accepted() -> None:
    (event,) = parse_events(b'[{"email": "a@example.com", "event": "open", "timestamp": 1717000000.0}]')
    assert event.timestamp == 1717000000
    assert isinstance(event.timestamp, int)
