"""NATS subjects of the live service: ``bars.<interval>.<symbol token>``, ``decisions.<policy token>``, ``dlq.bars``.

A NATS subject is a dot-separated list of tokens; ``*`` and ``>`` are wildcards and whitespace is not
allowed. Real tickers contain dots (``BRK.B``, ``BHP.AX``), slashes (``BTC/USD``) or carets (``^GSPC``),
so a symbol is never put into a subject as it is: :func:`encode_token` keeps ``[A-Za-z0-9_-]`` and writes
every other byte of its UTF-8 form as ``~XX`` (two upper-case hex digits; ``~`` is legal in a subject and
never produced otherwise). The encoding is a bijection between non-empty strings and canonical tokens:
:func:`decode_token` refuses a token that :func:`encode_token` would not have produced (a lower-case or
needless escape, a stray ``~``), so one symbol has exactly one subject.

``BRK.B`` -> ``BRK~2EB``, ``Bitstamp:BTC/USD`` -> ``Bitstamp~3ABTC~2FUSD``, ``^GSPC`` -> ``~5EGSPC``,
``ES=F`` -> ``ES~3DF``.

A :class:`Subjects` carries an optional prefix (``TRADING_NATS_SUBJECT_PREFIX``): one NATS account can
host several isolated deployments (or parallel test runs) whose streams must not overlap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trading_core.data.schema import validate_interval
from trading_core.errors import ConfigError

_PLAIN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_TOKEN_RE = re.compile(r"(?:[A-Za-z0-9_-]|~[0-9A-F]{2})+")
_ESCAPE_RE = re.compile(r"~([0-9A-F]{2})")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}(?:\.[A-Za-z0-9_-]{1,64}){0,3}$")

BARS = "bars"
DECISIONS = "decisions"
DLQ = "dlq"


class SubjectError(ConfigError):
    """A subject or token that is not one this module produces (names the subject and what was expected)."""


def encode_token(text: str) -> str:
    """``text`` as one subject token: ``[A-Za-z0-9_-]`` kept, every other UTF-8 byte as ``~XX``."""
    if not isinstance(text, str) or not text:
        raise SubjectError(f"cannot encode {text!r} as a subject token: expected a non-empty string")
    return "".join(chr(b) if b in _PLAIN else f"~{b:02X}" for b in text.encode("utf-8"))


def decode_token(token: str) -> str:
    """The string :func:`encode_token` turned into ``token``; :class:`SubjectError` for a non-canonical token."""
    if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
        raise SubjectError(f"invalid subject token {token!r}: expected [A-Za-z0-9_-] and ~XX escapes (upper-case hex)")
    data = bytearray()
    pos = 0
    for match in _ESCAPE_RE.finditer(token):
        data += token[pos : match.start()].encode("ascii")
        byte = int(match.group(1), 16)
        if byte in _PLAIN:
            raise SubjectError(f"invalid subject token {token!r}: {match.group(0)} escapes {chr(byte)!r}, a plain char")
        data.append(byte)
        pos = match.end()
    data += token[pos:].encode("ascii")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SubjectError(f"invalid subject token {token!r}: escapes are not UTF-8 ({exc.reason})") from None


@dataclass(frozen=True)
class Subjects:
    """The subject names of one deployment (``prefix`` empty: the bare ``bars.>``, ``decisions.>``, ``dlq.>``)."""

    prefix: str = ""

    def __post_init__(self) -> None:
        if self.prefix and not _PREFIX_RE.fullmatch(self.prefix):
            raise SubjectError(
                f"invalid subject prefix {self.prefix!r}: expected 1-4 dot-separated tokens of [A-Za-z0-9_-]"
            )

    def _join(self, *tokens: str) -> str:
        return ".".join((self.prefix, *tokens) if self.prefix else tokens)

    @property
    def bars_filter(self) -> str:
        """Every bar subject (the ``BARS`` stream's subjects, the consumer's filter)."""
        return self._join(BARS, ">")

    @property
    def decisions_filter(self) -> str:
        return self._join(DECISIONS, ">")

    @property
    def dlq_filter(self) -> str:
        return self._join(DLQ, ">")

    @property
    def dlq_bars(self) -> str:
        """Where rejected bars go (inside the ``DLQ`` stream, outside ``bars.>``)."""
        return self._join(DLQ, BARS)

    def bar(self, interval: str, symbol: str) -> str:
        """``bars.<interval>.<symbol token>``; the interval must be one the platform knows."""
        return self._join(BARS, validate_interval(interval), encode_token(symbol))

    def decisions(self, policy: str) -> str:
        """``decisions.<policy token>``."""
        return self._join(DECISIONS, encode_token(policy))

    def parse_bar(self, subject: str) -> tuple[str, str]:
        """``(interval, symbol)`` of a bar subject; :class:`SubjectError` when it is not one."""
        head = self._join(BARS) + "."
        parts = subject[len(head) :].split(".") if subject.startswith(head) else []
        if len(parts) != 2:
            raise SubjectError(f"subject {subject!r} is not a bar subject: expected {head}<interval>.<symbol token>")
        interval, token = parts
        try:
            return validate_interval(interval), decode_token(token)
        except ConfigError as exc:
            raise SubjectError(f"subject {subject!r}: {exc}") from None

    def parse_decisions(self, subject: str) -> str:
        """The policy name of a decisions subject."""
        head = self._join(DECISIONS) + "."
        if not subject.startswith(head) or "." in subject[len(head) :]:
            raise SubjectError(f"subject {subject!r} is not a decisions subject: expected {head}<policy token>")
        return decode_token(subject[len(head) :])
