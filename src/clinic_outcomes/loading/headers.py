"""A file's header: read cheaply in Python (so that DuckDB need not sniff each file) and checked against its
entity (required columns present, names matched case-insensitively and trimmed, no name twice)."""

from __future__ import annotations

import csv
import gzip
import zlib
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from clinic_outcomes.loading.discovery import ExportFile
from clinic_outcomes.loading.entities import Entity


class FileRejected(Exception):
    """A whole file cannot be loaded; the message is the recorded reason."""


@dataclass(frozen=True)
class Header:
    """A file's own column names (and, for parquet, their Arrow types)."""

    columns: tuple[str, ...]
    types: tuple[str, ...] = ()


def read_header(file: ExportFile) -> Header:
    """The file's header, read cheaply in Python so that DuckDB need not sniff each file."""
    try:
        if file.file_format == "parquet":
            schema = pq.read_schema(file.path)
            return Header(tuple(schema.names), tuple(str(t) for t in schema.types))
        opener = gzip.open if file.file_format == "csv.gz" else open
        with opener(file.path, "rt", encoding="utf-8-sig", newline="") as fh:
            first = next(csv.reader(fh), None)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error, pa.ArrowException) as exc:
        raise FileRejected(f"file cannot be read: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    if not first:
        raise FileRejected("file is empty: no header row")
    return Header(tuple(first))


def _normalised_columns(columns: tuple[str, ...]) -> dict[str, str]:
    """Spec name -> the file's own column name (header names match case-insensitively, trimmed)."""
    mapping: dict[str, str] = {}
    for original in columns:
        name = original.strip().lower()
        if name in mapping:
            raise FileRejected(f"column {name!r} appears twice in the header")
        mapping[name] = original
    return mapping


def check_header(header: Header, entity: Entity) -> list[str]:
    """Refuse a header without every required column; return the unknown columns (ignored)."""
    by_name = _normalised_columns(header.columns)
    missing = [c for c in entity.columns if c in entity.required and c not in by_name]
    if missing:
        raise FileRejected(f"missing required column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    return [by_name[c] for c in by_name if c not in entity.columns]
