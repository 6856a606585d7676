"""The export files of a synthetic network: every allowed variation of the CSV dialect, gzip and Parquet,
record versions spread over the drops, and (dirty=True) the malformed rows and files the loader must reject
(step 7 of clinic_outcomes.synthetic.generate)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from clinic_outcomes.synthetic.network import (
    BOOL_STYLES,
    DAILY_DROPS,
    ENTITY_COLUMNS,
    ENUM_COLUMNS,
    LEGACY_DROPS,
    PlantedFile,
    PlantedRow,
    THERAPIES,
    _choice,
)


def _therapy_text(bits: np.ndarray) -> pl.Series:
    uniq, inverse = np.unique(bits, return_inverse=True)
    texts = np.array([";".join(t for b, t in enumerate(THERAPIES) if u >> b & 1) for u in uniq.tolist()], dtype=object)
    return pl.Series(texts[inverse], dtype=pl.String)


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class _Style:
    fmt: str            # csv, csv.gz, parquet
    header: str         # lower, upper, title, padded
    shuffle: bool
    crlf: bool
    bom: bool
    quote: str          # necessary, non_numeric (every non-null field quoted)
    enum_case: str      # lower, title, upper
    bools: tuple[str, str]


def _styles(rng: np.random.Generator, n: int) -> list[_Style]:
    fmt = _choice(rng, n, (0.70, 0.20, 0.10))
    # Every accepted format appears at least once.
    if n >= 3:
        for f in (1, 2):
            if not (fmt == f).any():
                fmt[f] = f
    header = _choice(rng, n, (0.6, 0.1, 0.15, 0.15))
    shuffle = rng.random(n) < 0.25
    crlf = rng.random(n) < 0.3
    bom = rng.random(n) < 0.2
    quote = rng.random(n) < 0.2
    enum_case = _choice(rng, n, (0.85, 0.10, 0.05))
    bools = rng.integers(0, len(BOOL_STYLES), n)
    return [
        _Style(
            fmt=("csv", "csv.gz", "parquet")[fmt[i]],
            header=("lower", "upper", "title", "padded")[header[i]],
            shuffle=bool(shuffle[i]),
            crlf=bool(crlf[i]),
            bom=bool(bom[i]),
            quote="non_numeric" if quote[i] else "necessary",
            enum_case=("lower", "title", "upper")[enum_case[i]],
            bools=BOOL_STYLES[bools[i]],
        )
        for i in range(n)
    ]


def _header_name(name: str, style: str) -> str:
    if style == "upper":
        return name.upper()
    if style == "title":
        return "_".join(part.capitalize() for part in name.split("_"))
    if style == "padded":
        return f" {name}  "
    return name


def _as_text(df: pl.DataFrame, style: _Style) -> pl.DataFrame:
    exprs = []
    for name, dtype in df.schema.items():
        col = pl.col(name)
        if dtype == pl.Boolean:
            col = pl.when(col).then(pl.lit(style.bools[0])).when(~col).then(pl.lit(style.bools[1]))
        elif dtype == pl.Date:
            col = col.dt.strftime("%Y-%m-%d")
        elif dtype != pl.String:
            col = col.cast(pl.String)
        if name in ENUM_COLUMNS and style.enum_case != "lower":
            col = col.str.to_uppercase() if style.enum_case == "upper" else col.str.to_titlecase()
        exprs.append(col.alias(name))
    return df.select(exprs)


def _csv_bytes(df: pl.DataFrame, style: _Style) -> bytes:
    newline = "\r\n" if style.crlf else "\n"
    header = ",".join(_header_name(c, style.header) for c in df.columns) + newline
    body = io.BytesIO()
    text = _as_text(df, style)
    text.write_csv(body, include_header=False, quote_style=style.quote, line_terminator=newline)
    return (b"\xef\xbb\xbf" if style.bom else b"") + header.encode() + body.getvalue()


def _parquet_bytes(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.write_parquet(buf, compression="zstd", compression_level=3, statistics=False)
    return buf.getvalue()


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)  # mtime=0: the same bytes on every run


def _write_drops(out: Path, frames: dict[str, pl.DataFrame], first_date: dt.date, days: int, seed: int, dirty: bool):
    style_rng = np.random.default_rng([seed, 1])
    entities = list(ENTITY_COLUMNS)
    by_entity = {
        name: frames[name].sort(["_drop", "_order"], maintain_order=True).partition_by("_drop", as_dict=True, include_key=False)
        for name in entities
    }
    styles = _styles(style_rng, days * len(entities))
    orders = [style_rng.permutation(len(ENTITY_COLUMNS[e])) for e in entities for _ in range(days)]
    dirt = _DirtyPlan(np.random.default_rng([seed, 2]), by_entity, days) if dirty else None
    files = {"csv": 0, "csv.gz": 0, "parquet": 0}
    rows_written = {name: 0 for name in entities}
    bad_rows: list[PlantedRow] = []
    bad_files: list[PlantedFile] = []
    for d in range(days):
        drop = (first_date + dt.timedelta(days=d)).isoformat()
        folder = out / drop
        if d < days - DAILY_DROPS - 1 and all(by_entity[name].get((d,)) is None for name in entities):
            continue  # folded into the initial export (generate._initial_export)
        folder.mkdir()
        for e_i, name in enumerate(entities):
            df = by_entity[name].get((d,))
            if df is None or df.height == 0:
                continue
            df = df.drop("_order")
            k = e_i * days + d
            style = styles[k]
            if style.shuffle:
                df = df.select([df.columns[i] for i in orders[k]])
            if name == "plans" and 0 <= d - max(0, days - DAILY_DROPS) < LEGACY_DROPS:
                df = df.drop("chronicity")  # an older export: the column did not exist yet
            if dirt is not None:
                style = dirt.override_style(name, d, style)
            if style.fmt == "parquet":
                data = _parquet_bytes(df)
            else:
                text_df = df
                extra_column = dirt.extra_column(name, d) if dirt else None
                if extra_column:
                    text_df = text_df.with_columns(pl.lit("room 2").alias(extra_column))
                missing = dirt.missing_column(name, d) if dirt else None
                if missing:
                    text_df = text_df.drop(missing)
                data = _csv_bytes(text_df, style)
                if dirt is not None:
                    data = dirt.insert_rows(name, d, f"{drop}/{name}.{style.fmt}", data, text_df, style, bad_rows)
                if style.fmt == "csv.gz":
                    data = _gzip(data)
                    if dirt is not None and dirt.garble(name, d):
                        data = data[:10] + np.random.default_rng([seed, 3]).bytes(len(data) - 10)
            path = folder / f"{name}.{style.fmt}"
            path.write_bytes(data)
            files[style.fmt] += 1
            rows_written[name] += df.height
            if dirt is not None:
                bad_files.extend(dirt.file_record(name, d, f"{drop}/{name}.{style.fmt}", df.height))
        if dirt is not None and d == dirt.stray_drop:
            (folder / "notes.txt").write_text("Export notes: nothing to report tonight.\n")
            bad_files.append(PlantedFile(f"{drop}/notes.txt", None, "stray_file", 0))
    return files, rows_written, bad_rows, bad_files


# --------------------------------------------------------------------------- dirty mode

DIRTY_ROW_SHARE = 0.005  # of the data rows of the CSV files, per entity (at least one per kind)

# (kind, column, bad value) per entity
DIRTY_KINDS: dict[str, tuple[tuple[str, str | None, str | None], ...]] = {
    "sessions": (
        ("missing_required", "clinician_id", None),
        ("bad_timestamp", "started_at", "2026-13-02T09:30:00"),
        ("out_of_range", "pain_before", "11"),
        ("unknown_enum", "status", "rescheduled"),
        ("too_many_columns", None, "surplus"),
    ),
    "needle_sites": (
        ("missing_required", "side", None),
        ("unknown_enum", "side", "both"),
        ("out_of_range", "needles", "0"),
    ),
    "plans": (
        ("missing_required", "start_date", None),
        ("bad_bool", "pcp_cleared", "maybe"),
        ("out_of_range", "planned_weeks", "60"),
        ("unknown_enum", "status", "on_hold"),
    ),
    "pain_checkins": (
        ("missing_required", "pain", None),
        ("out_of_range", "pain", "11"),
        ("bad_timestamp", "recorded_at", "yesterday 9am"),
        ("unknown_enum", "channel", "email"),
    ),
    "patients": (
        ("missing_required", "updated_at", None),
        ("unknown_enum", "sex", "x"),
    ),
}
ID_COLUMN = {"sessions": "session_id", "needle_sites": "session_id", "plans": "plan_id", "pain_checkins": "checkin_id", "patients": "patient_id"}


class _DirtyPlan:
    """Which files get malformed rows, and which files are malformed, in dirty mode."""

    def __init__(self, rng: np.random.Generator, by_entity: dict[str, dict], days: int) -> None:
        self.rng = rng
        present = {name: sorted(k[0] for k in parts) for name, parts in by_entity.items()}

        def pick(name: str, avoid: set[int]) -> int | None:
            options = [d for d in present[name] if d not in avoid and by_entity[name][(d,)].height >= 2]
            return options[len(options) // 2] if options else None

        self.missing_column_at = ("patients", pick("patients", set()), "updated_at")
        self.garbled_at = ("pain_checkins", pick("pain_checkins", set()))
        self.extra_column_at = ("sessions", pick("sessions", set()), "room")
        self.stray_drop = days // 2
        self.special = {
            (self.missing_column_at[0], self.missing_column_at[1]),
            (self.garbled_at[0], self.garbled_at[1]),
            (self.extra_column_at[0], self.extra_column_at[1]),
        }
        # Malformed rows: a share of each entity's rows, spread over its CSV files.
        self.rows_per_file: dict[tuple[str, int], int] = {}
        for name, kinds in DIRTY_KINDS.items():
            drops = [d for d in present[name] if (name, d) not in self.special]
            if not drops:
                continue
            total = sum(by_entity[name][(d,)].height for d in drops)
            wanted = max(len(kinds), int(round(total * DIRTY_ROW_SHARE)))
            chosen = rng.choice(np.array(drops), size=wanted, replace=True)
            for d in chosen.tolist():
                self.rows_per_file[(name, d)] = self.rows_per_file.get((name, d), 0) + 1
        self.kind_cursor = {name: 0 for name in DIRTY_KINDS}
        self.serial = 0

    def override_style(self, name: str, d: int, style: _Style) -> _Style:
        if (name, d) == self.garbled_at:
            return _replace(style, fmt="csv.gz")
        if (name, d) in self.special or (name, d) in self.rows_per_file:
            return _replace(style, fmt="csv" if style.fmt == "parquet" else style.fmt)
        return style

    def extra_column(self, name: str, d: int) -> str | None:
        return self.extra_column_at[2] if (name, d) == self.extra_column_at[:2] else None

    def missing_column(self, name: str, d: int) -> str | None:
        return self.missing_column_at[2] if (name, d) == self.missing_column_at[:2] else None

    def garble(self, name: str, d: int) -> bool:
        return (name, d) == self.garbled_at

    def file_record(self, name: str, d: int, path: str, rows: int) -> list[PlantedFile]:
        if (name, d) == self.missing_column_at[:2]:
            return [PlantedFile(path, name, "missing_column", rows, self.missing_column_at[2])]
        if (name, d) == self.garbled_at:
            return [PlantedFile(path, name, "garbled_gzip", rows)]
        if (name, d) == self.extra_column_at[:2]:
            return [PlantedFile(path, name, "unknown_column", rows, self.extra_column_at[2])]
        return []

    def insert_rows(self, name: str, d: int, path: str, data: bytes, text_df: pl.DataFrame, style: _Style, planted: list[PlantedRow]) -> bytes:
        wanted = self.rows_per_file.get((name, d), 0)
        if not wanted:
            return data
        newline = b"\r\n" if style.crlf else b"\n"
        lines = data.split(newline)
        assert lines[-1] == b""
        header, rows = lines[0], lines[1:-1]
        source = _as_text(text_df, style)
        columns = source.columns
        inserts: list[tuple[int, bytes, PlantedRow]] = []
        positions = np.sort(self.rng.integers(0, len(rows) + 1, wanted))
        for n_before, pos in enumerate(positions.tolist()):
            kinds = DIRTY_KINDS[name]
            kind, column, value = kinds[self.kind_cursor[name] % len(kinds)]
            self.kind_cursor[name] += 1
            template = source.row(int(self.rng.integers(0, source.height)))
            record = dict(zip(columns, template))
            self.serial += 1
            id_column = ID_COLUMN[name]
            if name == "patients":
                record[id_column] = f"MRN{9_000_000 + self.serial}"
            else:
                record[id_column] = f"{record[id_column]}-BAD{self.serial:04d}"
            if column is not None and value is not None:
                value = _cased(value, column, style)
            if column is not None:
                record[column] = value
            fields = [_csv_field(record[c]) for c in columns]
            if kind == "too_many_columns":
                fields.append(value or "")
            line = ",".join(fields).encode()
            # line number: header is 1; earlier inserts shift it down
            line_no = pos + n_before + 2
            inserts.append((pos, line, PlantedRow(path, line_no, name, kind, column, value)))
        out_rows: list[bytes] = []
        cursor = 0
        for pos, line, row in inserts:
            out_rows.extend(rows[cursor:pos])
            out_rows.append(line)
            cursor = pos
            planted.append(row)
        out_rows.extend(rows[cursor:])
        return newline.join([header, *out_rows, b""])


def _cased(value: str, column: str, style: _Style) -> str:
    if column in ENUM_COLUMNS and style.enum_case == "upper":
        return value.upper()
    return value


def _csv_field(value: str | None) -> str:
    if value is None:
        return ""
    if any(ch in value for ch in ',"\r\n') or value != value.strip():
        return '"' + value.replace('"', '""') + '"'
    return value


def _replace(style: _Style, **changes) -> _Style:
    return dataclasses.replace(style, **changes)


