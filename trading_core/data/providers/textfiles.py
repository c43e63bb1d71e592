"""Reading a text file's framing before its rows: compression, encoding, delimiter, header.

Vendor files arrive gzipped without a ``.gz`` name, with a byte-order mark, delimited by ``;`` or
tabs, with quoted or duplicated header names, or with NUL bytes; these helpers find out which
before pandas reads the rows, so the file provider can read it as it is or refuse it in one line.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import lzma
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from trading_core.errors import ProviderError, SchemaError

_DELIMITERS = (",", ";", "\t", "|")


@dataclass(frozen=True)
class TextFormat:
    """How a CSV file is encoded: compression, delimiter and its (cleaned) header."""

    compression: str | None
    sep: str
    header: list[str]


def is_parquet(path: Path) -> bool:
    """By the suffix, or by Parquet's magic bytes for a file named otherwise."""
    if path.suffix in {".parquet", ".pq"}:
        return True
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"PAR1"
    except OSError:
        return False


def compression_of(path: Path) -> str | None:
    """From the magic bytes, not the name: a gzip saved as .csv is still gzip."""
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if magic[:2] == b"\x1f\x8b":
        return "gzip"
    if magic[:3] == b"BZh":
        return "bz2"
    if magic == b"\xfd7zXZ\x00":
        return "xz"
    return None


def open_text(path: Path, compression: str | None) -> IO[str]:
    """A UTF-8 text handle (a byte-order mark skipped, newlines as written) through the decompressor."""
    opener: Callable[..., IO[str]] = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}.get(  # type: ignore[assignment]
        compression or "", open
    )
    return opener(path, "rt", encoding="utf-8-sig", newline="")


class NulEscaping:
    """A text handle whose NUL characters arrive as the four characters ``\\x00``.

    pandas' C parser ends a field at a NUL, so ``A\\0A`` would silently become the valid ticker
    ``A``; escaped, the value stays what the file says and validation names it.
    """

    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle

    def read(self, size: int = -1) -> str:
        text = self.handle.read(size)
        return text.replace("\x00", "\\x00") if "\x00" in text else text

    def __iter__(self) -> Iterator[str]:
        return (line.replace("\x00", "\\x00") for line in self.handle)


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def unique_names(names: list[str]) -> list[str]:
    """Header names as pandas would use them: duplicates get ``.1``, ``.2`` (kept so a mapping sees them)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name in seen:
            seen[name] += 1
            out.append(f"{name}.{seen[name]}")
        else:
            seen[name] = 0
            out.append(name)
    return out


def text_format(path: Path) -> TextFormat:
    """Compression, delimiter and header of a CSV file (reads its first line only)."""
    try:
        compression = compression_of(path)
        with open_text(path, compression) as handle:
            first = handle.readline()
    except UnicodeDecodeError as exc:
        raise ProviderError(f"{path}: not UTF-8 text ({one_line(exc)}); save the file as UTF-8") from exc
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
        raise ProviderError(f"{path}: cannot read header: {one_line(exc)}") from exc
    if not first.strip():
        raise SchemaError(f"{path}: file is empty (no header line)")
    line = first.rstrip("\r\n")
    best = max(_DELIMITERS, key=lambda d: (len(next(csv.reader([line], delimiter=d))), d == ","))
    names = [c.strip() for c in next(csv.reader([line], delimiter=best))]
    return TextFormat(compression, best, unique_names(names))


def read_header(path: Path) -> list[str]:
    """Column names of a CSV(.gz) or Parquet file without reading its rows."""
    if is_parquet(path):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return [str(n) for n in pq.read_schema(path).names]
        except (pa.ArrowException, OSError) as exc:
            raise ProviderError(f"{path}: not a readable Parquet file: {one_line(exc)}") from exc
    return text_format(path).header
