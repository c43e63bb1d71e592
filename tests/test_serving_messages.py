"""Subjects, messages and the validation of an incoming bar (no broker needed).

The symbol token encoding is a bijection that never adds a subject level or a wildcard (hypothesis), the
messages round-trip exactly and export their JSON schema, and every way a bar message can be wrong ends
in a dead letter with its own reason code, the original bytes and what could be read of it.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from trading_core.data.request import ValidationPolicy
from trading_core.data.schema import SYMBOL_RE
from trading_core.serving.messages import (
    BarMessage,
    DeadLetter,
    DeadLetterReason,
    DecisionMessage,
    Delivery,
    bar_json,
    message_schemas,
)
from trading_core.serving.subjects import SubjectError, Subjects, decode_token, encode_token
from trading_core.serving.validation import dead_letter, validate_bar

ROOT = Path(__file__).resolve().parents[1]
SUBJECT_TOKEN = re.compile(r"^[A-Za-z0-9_~-]+$")
T0 = datetime(2024, 1, 2, tzinfo=UTC)
SUBJECTS = Subjects()


def good_body(**changes: object) -> dict:
    body = {"schema_version": 1, "symbol": "BRK.B", "interval": "1d", "timestamp": "2024-01-02T00:00:00Z",
            "open": 100.0, "high": 101.5, "low": 99.25, "close": 100.75, "volume": 12345.0}  # fmt: skip
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def deliver(raw: bytes, subject: str = "bars.1d.BRK~2EB", seq: int = 7) -> Delivery:
    return Delivery(subject, raw, "BARS", seq, 1, datetime(2024, 1, 2, 21, tzinfo=UTC))


# ---------------------------------------------------------------------------------------------- subjects


@pytest.mark.parametrize(
    ("symbol", "token"),
    [
        ("AAPL", "AAPL"),
        ("BRK.B", "BRK~2EB"),
        ("BHP.AX", "BHP~2EAX"),
        ("BTC/USD", "BTC~2FUSD"),
        ("Bitstamp:BTC/USD", "Bitstamp~3ABTC~2FUSD"),
        ("^GSPC", "~5EGSPC"),
        ("ES=F", "ES~3DF"),
        ("a~b", "a~7Eb"),
        ("BRK-B_x", "BRK-B_x"),
    ],
)
def test_symbol_tokens_of_real_tickers(symbol: str, token: str) -> None:
    assert encode_token(symbol) == token
    assert decode_token(token) == symbol
    subject = SUBJECTS.bar("1d", symbol)
    assert subject == f"bars.1d.{token}" and subject.count(".") == 2
    assert SUBJECTS.parse_bar(subject) == ("1d", symbol)


@given(st.text(min_size=1, max_size=60))
@hsettings(max_examples=400, deadline=None)
def test_any_text_round_trips_as_one_wildcard_free_token(text: str) -> None:
    token = encode_token(text)
    assert SUBJECT_TOKEN.fullmatch(token), token  # no '.', '*', '>', whitespace: one level, no wildcard
    assert decode_token(token) == text


@given(st.from_regex(SYMBOL_RE, fullmatch=True).filter(lambda s: ".." not in s))
@hsettings(max_examples=300, deadline=None)
def test_every_valid_symbol_makes_a_three_level_bar_subject(symbol: str) -> None:
    subject = Subjects("env-a.x").bar("5m", symbol)
    assert subject.split(".")[:3] == ["env-a", "x", "bars"] and len(subject.split(".")) == 5
    assert Subjects("env-a.x").parse_bar(subject) == ("5m", symbol)


@given(st.text(alphabet="AZaz09_-~2EF7", min_size=1, max_size=20))
@hsettings(max_examples=400, deadline=None)
def test_decoding_accepts_only_canonical_tokens(token: str) -> None:
    """One symbol, one subject: a token either is what encode_token makes of its decoding, or is refused."""
    try:
        text = decode_token(token)
    except SubjectError:
        return
    assert encode_token(text) == token


@pytest.mark.parametrize("token", ["", "~41", "~2e", "~", "BRK~2", "~G1", "BRK.B", "a*", ">", "~FF", "a b"])
def test_non_canonical_or_unsafe_tokens_are_refused(token: str) -> None:
    with pytest.raises(SubjectError):
        decode_token(token)


@pytest.mark.parametrize(
    "subject", ["bars.1d", "bars.1d.A.B", "bars.2d.AAPL", "bars.1d.BRK.B", "decisions.p", "x.bars.1d.AAPL"]
)
def test_what_is_not_a_bar_subject(subject: str) -> None:
    with pytest.raises(SubjectError):
        SUBJECTS.parse_bar(subject)


def test_prefixed_subjects_and_stream_filters() -> None:
    subjects = Subjects("paper")
    assert subjects.bars_filter == "paper.bars.>"
    assert subjects.dlq_bars == "paper.dlq.bars" and subjects.dlq_filter == "paper.dlq.>"
    assert subjects.decisions("trading-policy") == "paper.decisions.trading-policy"
    assert subjects.parse_decisions(subjects.decisions("my.policy")) == "my.policy"
    assert Subjects().bars_filter == "bars.>" and Subjects().dlq_bars == "dlq.bars"
    for bad in ("a..b", "a.*", "a b", ">", "a.b.c.d.e"):
        with pytest.raises(SubjectError):
            Subjects(bad)


# ---------------------------------------------------------------------------------------------- messages


@given(
    st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False),
    st.floats(min_value=0.0, max_value=1e12, allow_nan=False, allow_infinity=False),
)
@hsettings(max_examples=200, deadline=None)
def test_bars_round_trip_through_json_exactly(price: float, volume: float) -> None:
    bar = BarMessage(symbol="BTC/USD", interval="1h", timestamp=T0, open=price, high=price, low=price,
                     close=price, volume=volume)  # fmt: skip
    again = BarMessage.model_validate_json(bar_json(bar))
    assert again == bar and again.close == price and again.volume == volume


def test_bar_times_are_utc_whatever_the_offset() -> None:
    bar = BarMessage.model_validate(good_body(timestamp="2024-01-02T09:30:00-05:00"))
    assert bar.timestamp == datetime(2024, 1, 2, 14, 30, tzinfo=UTC) and bar.timestamp.utcoffset().total_seconds() == 0
    assert json.loads(bar_json(bar))["timestamp"] == "2024-01-02T14:30:00Z"
    assert bar.idempotency_id == "bar:1d:BRK.B:2024-01-02T14:30:00+00:00"


def test_json_schemas_are_exported() -> None:
    schemas = message_schemas()
    bar = schemas["BarMessage"]
    assert bar["additionalProperties"] is False
    assert set(bar["required"]) == {"symbol", "interval", "timestamp", "open", "high", "low", "close", "volume"}
    assert bar["properties"]["schema_version"]["const"] == 1
    assert bar["properties"]["open"]["exclusiveMinimum"] == 0
    assert schemas["DeadLetter"]["properties"]["reason"]["$ref"].endswith("DeadLetterReason")
    json.dumps(schemas)


def test_the_docs_table_lists_the_bar_fields() -> None:
    doc = (ROOT / "docs" / "serving.md").read_text()
    section = doc.split("### BarMessage", 1)[1].split("\n#", 1)[0]
    documented = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)
    assert documented == list(BarMessage.model_fields)
    codes = set(re.findall(r"^\| `([a-z_]+)` \|", doc.split("## Dead letters", 1)[1].split("\n## ", 1)[0], flags=re.M))
    assert codes == {r.value for r in DeadLetterReason}


def test_decision_idempotency_ignores_when_and_what() -> None:
    a = DecisionMessage(policy="trading-policy", model_version="3", account="ab-1:champion", bar_time=T0,
                        decided_at=datetime(2024, 1, 2, 21, tzinfo=UTC), payload={"weights": {"A": 0.5}})  # fmt: skip
    b = a.model_copy(update={"decided_at": datetime(2024, 1, 3, tzinfo=UTC), "payload": {}})
    assert a.idempotency_id == b.idempotency_id == "decision:trading-policy:3:ab-1:champion:2024-01-02T00:00:00+00:00"
    assert a.model_copy(update={"model_version": "4"}).idempotency_id != a.idempotency_id
    assert DecisionMessage.model_validate_json(a.model_dump_json()) == a
    with pytest.raises(ValueError):
        DecisionMessage(policy="p", model_version="1", account="a", bar_time=T0, extra=1)  # type: ignore[call-arg]


# ------------------------------------------------------------------------------------------ dead letters

CASES: list[tuple[str, bytes, str, DeadLetterReason, str]] = [
    ("malformed JSON", b'{"symbol": "BRK.B", ', "bars.1d.BRK~2EB", DeadLetterReason.MALFORMED_JSON, "not UTF-8 JSON"),
    ("not an object", b"[1, 2]", "bars.1d.BRK~2EB", DeadLetterReason.MALFORMED_JSON, "JSON object"),
    ("not UTF-8", b"\xff\xfe{}", "bars.1d.BRK~2EB", DeadLetterReason.MALFORMED_JSON, "not UTF-8"),
    ("too large", b" " * 5000, "bars.1d.BRK~2EB", DeadLetterReason.MALFORMED_JSON, "5000 bytes"),
    ("no schema version", json.dumps(good_body(schema_version=...)).encode(), "bars.1d.BRK~2EB",
     DeadLetterReason.MISSING_FIELD, "schema_version"),
    ("wrong schema version", json.dumps(good_body(schema_version=2, extra=1)).encode(), "bars.1d.BRK~2EB",
     DeadLetterReason.SCHEMA_VERSION, "version 2"),
    ("schema version true", json.dumps(good_body(schema_version=True)).encode(), "bars.1d.BRK~2EB",
     DeadLetterReason.SCHEMA_VERSION, "True"),
    ("missing field", json.dumps(good_body(volume=...)).encode(), "bars.1d.BRK~2EB",
     DeadLetterReason.MISSING_FIELD, "'volume'"),
    ("extra field", json.dumps(good_body(vwap=100.1)).encode(), "bars.1d.BRK~2EB",
     DeadLetterReason.EXTRA_FIELD, "'vwap'"),
    ("price as a string", json.dumps(good_body(open="100.0")).encode(), "bars.1d.BRK~2EB",
     DeadLetterReason.INVALID_FIELD, "'open'"),
    ("naive timestamp", json.dumps(good_body(timestamp="2024-01-02T00:00:00")).encode(), "bars.1d.BRK~2EB",
     DeadLetterReason.INVALID_FIELD, "timezone"),
    ("unparseable timestamp", json.dumps(good_body(timestamp="yesterday")).encode(), "bars.1d.BRK~2EB",
     DeadLetterReason.INVALID_FIELD, "'timestamp'"),
    ("NaN price", json.dumps(good_body(close=float("nan"))).encode(), "bars.1d.BRK~2EB",
     DeadLetterReason.NON_FINITE_VALUE, "'close'"),
    ("infinite volume", json.dumps(good_body(volume=float("inf"))).encode(), "bars.1d.BRK~2EB",
     DeadLetterReason.NON_FINITE_VALUE, "'volume'"),
    ("negative price", json.dumps(good_body(low=-1.0)).encode(), "bars.1d.BRK~2EB",
     DeadLetterReason.NON_POSITIVE_PRICE, "'low'"),
    ("zero price", json.dumps(good_body(open=0)).encode(), "bars.1d.BRK~2EB",
     DeadLetterReason.NON_POSITIVE_PRICE, "'open'"),
    ("negative volume", json.dumps(good_body(volume=-5.0)).encode(), "bars.1d.BRK~2EB",
     DeadLetterReason.NEGATIVE_VOLUME, "'volume'"),
    ("high below low", json.dumps(good_body(high=99.0, low=99.5, open=99.2, close=99.3)).encode(), "bars.1d.BRK~2EB",
     DeadLetterReason.OHLC_ORDER, "low 99.5 > high 99"),
    ("high below the close", json.dumps(good_body(close=102.0)).encode(), "bars.1d.BRK~2EB",
     DeadLetterReason.OHLC_ORDER, "high 101.5 < max(open, close) 102"),
    ("low above the open", json.dumps(good_body(open=99.0)).encode(), "bars.1d.BRK~2EB",
     DeadLetterReason.OHLC_ORDER, "low 99.25 > min(open, close) 99"),
    ("invalid symbol", json.dumps(good_body(symbol="BRK B")).encode(), "bars.1d.BRK~20B",
     DeadLetterReason.INVALID_SYMBOL, "'BRK B'"),
    ("symbol with ..", json.dumps(good_body(symbol="A..B")).encode(), "bars.1d.A~2E~2EB",
     DeadLetterReason.INVALID_SYMBOL, "'A..B'"),
    ("unknown interval", json.dumps(good_body(interval="2d")).encode(), "bars.2d.BRK~2EB",
     DeadLetterReason.INVALID_INTERVAL, "'2d'"),
    ("raw dotted subject", json.dumps(good_body()).encode(), "bars.1d.BRK.B", DeadLetterReason.INVALID_SUBJECT,
     "not a bar subject"),
    ("subject of another symbol", json.dumps(good_body()).encode(), "bars.1d.AAPL", DeadLetterReason.SUBJECT_MISMATCH,
     "'AAPL'"),
    ("subject of another interval", json.dumps(good_body()).encode(), "bars.1h.BRK~2EB",
     DeadLetterReason.SUBJECT_MISMATCH, "1h"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "raw", "subject", "reason", "detail"), CASES, ids=[c[0] for c in CASES])
def test_every_bad_message_becomes_a_dead_letter_with_its_reason(
    case: str, raw: bytes, subject: str, reason: DeadLetterReason, detail: str
) -> None:
    letter = validate_bar(deliver(raw, subject), SUBJECTS)
    assert isinstance(letter, DeadLetter), case
    assert letter.reason == reason, letter.detail
    assert detail in letter.detail
    assert letter.raw_bytes() == raw and letter.subject == subject
    assert (letter.stream, letter.stream_seq, letter.deliveries) == ("BARS", 7, 1)
    assert letter.idempotency_id == "dlq:BARS:7"
    assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter
    body_readable = raw.startswith(b"{") and reason not in {DeadLetterReason.MALFORMED_JSON}
    if body_readable and b'"symbol": "BRK.B"' in raw:
        assert letter.symbol == "BRK.B"


def test_the_transport_checks_cover_every_transport_reason() -> None:
    loop_reasons = {DeadLetterReason.UNKNOWN_SYMBOL, DeadLetterReason.STALE_BAR, DeadLetterReason.DUPLICATE_BAR}
    assert {c[3] for c in CASES} == set(DeadLetterReason) - loop_reasons


def test_a_good_message_is_a_bar_and_the_ingest_tolerance_applies() -> None:
    bar = validate_bar(deliver(json.dumps(good_body()).encode()), SUBJECTS)
    assert isinstance(bar, BarMessage) and bar.symbol == "BRK.B" and bar.close == 100.75
    # Vendor rounding: high a hair under the close passes within the ingest's relative tolerance (1e-9)...
    within = json.dumps(good_body(close=101.5 * (1 + 5e-10))).encode()
    assert isinstance(validate_bar(deliver(within), SUBJECTS), BarMessage)
    # ... and is refused with a stricter policy, as the ingest would.
    strict = validate_bar(deliver(within), SUBJECTS, ValidationPolicy(ohlc_tolerance=0.0))
    assert isinstance(strict, DeadLetter) and strict.reason == DeadLetterReason.OHLC_ORDER


def test_binary_garbage_is_kept_byte_for_byte_in_base64() -> None:
    raw = bytes(range(256))
    letter = validate_bar(deliver(raw), SUBJECTS)
    assert isinstance(letter, DeadLetter) and letter.raw_encoding == "base64"
    assert DeadLetter.model_validate_json(letter.model_dump_json()).raw_bytes() == raw


def test_the_loops_dead_letters_have_the_same_shape() -> None:
    raw = json.dumps(good_body()).encode()
    letter = dead_letter(deliver(raw), "stale_bar", "2024-01-02 is not after the last decided 2024-01-03",
                         symbol="BRK.B", bar_time=T0)  # fmt: skip
    assert letter.reason == DeadLetterReason.STALE_BAR and letter.raw_bytes() == raw
    assert letter.idempotency_id == "dlq:BARS:7" and letter.bar_time == T0
    with pytest.raises(ValueError):
        dead_letter(deliver(raw), "no_such_reason", "x")
    no_stream = letter.model_copy(update={"stream": None, "stream_seq": None})
    assert no_stream.idempotency_id.startswith("dlq:") and no_stream.idempotency_id != letter.idempotency_id
