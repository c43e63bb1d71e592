"""Small guards shared by every stage: secrets out of logs, untrusted paths checked (see docs/security.md).

* :func:`redact_url` masks the password (and secret-looking query values) of a database URL or a
  tracking URI before it is printed, logged, or put in an exception message.
* :func:`resolve_input_file` turns a user-supplied file path (a DAG param, a CLI argument) into the
  resolved path of an existing regular file, optionally inside allowed roots; anything else raises a
  :class:`~trading_core.errors.ConfigError` that names the field and the value.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from trading_core.errors import ConfigError

MASK = "***"
SECRET_QUERY_KEYS = frozenset(
    {"password", "passwd", "pwd", "secret", "token", "access_token", "api_key", "apikey", "access_key", "key"}
)
"""Query parameters whose values :func:`redact_url` masks (compared case-insensitively)."""


def redact_url(url: object) -> str:
    """``url`` with its password and secret query values replaced by ``***`` (safe to log).

    Works for SQLAlchemy URLs (``postgresql+psycopg2://user:pw@host/db``), http(s) tracking URIs
    with user info, and plain paths (returned unchanged). It errs on the side of masking: a password
    holding an unescaped ``@`` or ``/`` is masked up to the last ``@``. Never raises.
    """
    text = str(url)
    if "://" not in text:
        return text
    for pattern in _USERINFO_PASSWORD:
        text, found = pattern.subn(rf"\1:{MASK}@", text, count=1)
        if found:
            break
    base, sep, query = text.partition("?")
    if not sep:
        return text
    query, hash_, fragment = query.partition("#")
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(k.lower() in SECRET_QUERY_KEYS for k, _ in pairs):
        return text
    masked = urlencode([(k, MASK if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs], safe="*")
    return f"{base}?{masked}{hash_}{fragment}"


_USERINFO_PASSWORD = (
    re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@]*):[^/?#]*@"),  # up to the host's '@' (even if '@' in pw)
    re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@]*):[^@]*@"),  # an unescaped '/' in the password
)
"""``scheme://user:password@``; the first pattern that matches is masked."""


def resolve_input_file(path: str | Path, *, field: str = "path", roots: Iterable[Path] | None = None) -> Path:
    """The resolved path of the existing regular file ``path``, inside one of ``roots`` when given.

    Symlinks are resolved *before* the roots are checked, so a link inside a root that points
    outside it is refused. Devices, FIFOs and directories are refused (a FIFO would block the task).

    :raises ConfigError: naming ``field`` and the value, when the path is empty, holds a NUL byte,
        does not exist, is not a regular file, or lies outside every root.
    """
    text = str(path)
    if not text or "\x00" in text:
        raise ConfigError(f"invalid {field} {text!r}: empty or contains a NUL byte")
    try:
        resolved = Path(text).expanduser().resolve(strict=True)
        mode = resolved.stat().st_mode
    except (OSError, RuntimeError) as exc:  # missing, permission denied, symlink loop
        reason = getattr(exc, "strerror", None) or exc
        raise ConfigError(f"invalid {field} {text!r}: data file not found or unreadable ({reason})") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(f"invalid {field} {text!r}: not a regular file ({resolved})")
    if roots is not None:
        allowed = [Path(r).expanduser().resolve() for r in roots]
        if not any(resolved.is_relative_to(root) for root in allowed):
            raise ConfigError(
                f"invalid {field} {text!r}: {resolved} is outside the allowed ingest roots "
                f"{[str(r) for r in allowed]} (TRADING_INGEST_ROOTS)"
            )
    return resolved
