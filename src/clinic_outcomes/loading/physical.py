"""A CSV export file's physical records, read in Python beside DuckDB's reader, so that nothing is lost.

DuckDB's CSV reader (strict mode, the header given) refuses a file whose line
ends mix LF and CRLF, and a line of about 33 MB or more can vanish from it
without a reject entry (stack.md). exports.md allows mixed line ends and wants
a row longer than 1 MiB rejected with its line number, however long, and every
data row loaded or recorded as rejected. So each CSV file is first scanned in
blocks (`prescan`: line count, mixed line ends, any line over 1 MiB; at memory
speed, no per-line Python). A file with mixed line ends or an over-long line is
read from a normalised copy (`normalised_copy`): LF line ends, and each record
over 1 MiB replaced by as many blank lines as it spans, so every other record
keeps its physical line number; the over-long records are returned (line,
size) to be recorded as rejected. Their text is never kept: memory stays
bounded by 1 MiB per record however long the line.

Record boundaries in the copy follow Python's csv quoting rules (a quote opens
a quoted field only at a field's start; `""` inside one is a quote), scanned
quote by quote and comma by comma only on lines that hold a quote. Choices where the
spec is silent: a row's length counts its bytes with its line ends; CRLF
inside a quoted field becomes LF in the copy (only free-text values can hold a
line break: identifiers with one are rejected).

`physical_lines` gives the start line of every non-blank record (Python's csv
module over the file as read), for physical line numbers and for the per-file
cross-check against the reader's counts.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

LIMIT = 1 << 20  # a row (record) longer than this many bytes is rejected


@dataclass(frozen=True)
class Prescan:
    lines: int  # physical lines, a last line without a line end included
    mixed_line_ends: bool  # both LF and CRLF line ends
    long_line: bool  # a line longer than LIMIT bytes

    @property
    def needs_copy(self) -> bool:
        return self.mixed_line_ends or self.long_line


def _open_bytes(path: Path, file_format: str) -> BinaryIO:
    return gzip.open(path, "rb") if file_format == "csv.gz" else open(path, "rb")


def prescan(path: Path, file_format: str) -> Prescan | None:
    """Lines, mixed line ends and over-long lines of a CSV file, in 1 MiB blocks; None if it cannot be read."""
    newlines = crlf = 0
    run = 0  # bytes since the last line end
    long_line = False
    last = b""
    carry_cr = False  # the previous block ended with CR (a CRLF split across blocks)
    try:
        with _open_bytes(path, file_format) as fh:
            # Blocks of LIMIT bytes: a line inside one block is shorter than LIMIT; a longer one spans blocks.
            for block in iter(lambda: fh.read(LIMIT), b""):
                newlines += block.count(b"\n")
                crlf += block.count(b"\r\n") + (1 if carry_cr and block.startswith(b"\n") else 0)
                carry_cr = block.endswith(b"\r")
                first = block.find(b"\n")
                if first == -1:
                    run += len(block)
                else:
                    long_line = long_line or run + first + 1 > LIMIT
                    run = len(block) - block.rfind(b"\n") - 1
                long_line = long_line or run > LIMIT
                last = block[-1:]
    except (OSError, EOFError, zlib.error):
        return None
    lines = newlines + (1 if last and last != b"\n" else 0)
    return Prescan(lines=lines, mixed_line_ends=0 < crlf < newlines, long_line=long_line)


class _QuoteState:
    """Where a record stands in CSV quoting, fed a line in pieces: Python's csv rules (doublequote, not strict):
    a quote opens a quoted field only at the start of a field; inside one, `""` is a quote and a single quote
    closes it; after it, and in an unquoted field, every character up to the next comma is literal."""

    def __init__(self) -> None:
        self.state = "start"  # start | field | quoted | quoted_quote

    def feed(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n:
            if self.state in ("start", "field") and data.find(b'"', i) < 0:
                # No quote left: only where the last field starts matters (most lines end here at once).
                self.state = "start" if data.endswith(b",") else "field"
                return
            if self.state == "start":
                if data[i] == 34:  # '"'
                    self.state, i = "quoted", i + 1
                else:
                    self.state = "field"
            elif self.state == "field":
                k = data.find(b",", i)
                i, self.state = (n, "field") if k < 0 else (k + 1, "start")
            elif self.state == "quoted":
                j = data.find(b'"', i)
                i, self.state = (n, "quoted") if j < 0 else (j + 1, "quoted_quote")
            elif data[i] == 34:  # quoted_quote: an escaped quote
                self.state, i = "quoted", i + 1
            else:
                self.state = "field"

    def end_line(self) -> bool:
        """True when the line end is inside a quoted field (the record goes on), else the record ends here."""
        if self.state == "quoted_quote":
            self.state = "field"
        if self.state == "quoted":
            return True
        self.state = "start"
        return False


def _lines(fh: BinaryIO) -> Iterator[tuple[bytes | None, int, bool]]:
    """(text without its line end, or None when longer than LIMIT; size in bytes; whether the record goes on past
    this line end) per physical line; memory bounded by LIMIT however long the line."""
    quotes = _QuoteState()
    while True:
        piece = fh.readline(LIMIT + 1)
        if not piece:
            return
        size, text = len(piece), piece
        quotes.feed(piece.rstrip(b"\r\n") if piece.endswith(b"\n") else piece)
        while not piece.endswith(b"\n"):
            piece = fh.readline(LIMIT + 1)
            if not piece:
                break
            size, text = size + len(piece), None
            quotes.feed(piece.rstrip(b"\r\n") if piece.endswith(b"\n") else piece)
        if text is not None and size > LIMIT:
            text = None
        if text is not None:
            text = text[:-2] if text.endswith(b"\r\n") else text[:-1] if text.endswith(b"\n") else text
        yield text, size, quotes.end_line()


def normalised_copy(path: Path, file_format: str, dest: Path) -> list[tuple[int, int]]:
    """Write `dest`: the file with LF line ends and each record over LIMIT bytes blanked (one empty line per line
    it spans). Returns the blanked records as (first line, size in bytes)."""
    long: list[tuple[int, int]] = []
    with _open_bytes(path, file_format) as src, open(dest, "wb") as out:
        line_no = 0
        record: list[bytes] = []
        spans = size = start = 0
        oversize = False

        def flush() -> None:
            nonlocal record, spans, size, oversize
            if oversize:
                out.write(b"\n" * spans)
                long.append((start, size))
            else:
                out.write(b"\n".join(record) + b"\n")
            record, spans, size, oversize = [], 0, 0, False

        for text, line_size, continues in _lines(src):
            line_no += 1
            if spans == 0:
                start = line_no
            spans += 1
            size += line_size
            oversize = oversize or text is None or size > LIMIT
            if not oversize:
                record.append(text)
            else:
                record = []
            if not continues:
                flush()
        if spans:
            flush()  # an unterminated quoted field runs to the end of the file: the reader rejects it
    return long


def count_records(path: Path, file_format: str) -> int | None:
    """Non-blank data records by quote parity (as normalised_copy splits them), for files Python's csv module
    cannot read (a field over its limit); None if the file cannot be read."""
    records = 0
    started = False  # the current record has a non-blank line
    try:
        with _open_bytes(path, file_format) as fh:
            for text, _, continues in _lines(fh):
                started = started or text is None or text.strip(b"\r") != b""
                if not continues:
                    records += started
                    started = False
            records += started
    except (OSError, EOFError, zlib.error):
        return None
    return max(records - 1, 0)  # the header


def physical_lines(path: Path, file_format: str) -> tuple[list[int], list[int]] | None:
    """Start lines of the file's records: (those with the header's number of fields, the others).

    The CSV reader numbers records, not lines: blank lines and line breaks inside
    quoted fields make the two differ. None when Python cannot read the file the
    same way (the reader's own numbers then stand).
    """
    good: list[int] = []
    bad: list[int] = []
    limit = csv.field_size_limit()
    csv.field_size_limit(2 * LIMIT)  # a field may be up to a row's limit (the default is 128 KiB)
    try:
        with _open_bytes(path, file_format) as raw:
            fh = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            reader = csv.reader(fh)
            width = len(next(reader))
            previous = reader.line_num
            for row in reader:
                start, previous = previous + 1, reader.line_num
                if row:  # the reader skips blank lines; so does this count
                    (good if len(row) == width else bad).append(start)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error, StopIteration):
        return None
    finally:
        csv.field_size_limit(limit)
    return good, bad
