"""Value sets (code lists) kept once, as CSV seeds in `sql/seeds/<name>.csv`, read by SQL, GX and Python alike.

A seed is a CSV file whose first column, `value`, lists the allowed values in their canonical order (the order
reports list them in and the synthetic generator draws them in); further columns describe each value (e.g.
`age_bands.min_years`). `load_seed` is the one function that reads them:

- Python takes its constants from `value_set(name)` (metrics, the synthetic generator);
- SQL reads them through temp macros made at prepare time (`create_macros`): `seed_<name>()` is the list of
  values, `seed_<name>_<column>()` the list of a further column, in the same order. A macro whose body is a
  constant list keeps each check exactly as cheap as the literal it replaced (a seed table would turn every
  enum check into a subquery);
- the GX suites keep literal lists so that a reviewer reads the rule in the JSON; tests/test_seeds.py checks
  that they, the macros and the Python constants agree with the seeds.

A value is lower-case ASCII as exported (letters, digits, `_`, `-`, `+`, a space); anything else in a seed is
refused, so a value can never break the SQL it is spliced into.
"""

from __future__ import annotations

import csv
import functools
import re

import duckdb

from clinic_outcomes.warehouse import SQL_DIR

SEEDS_DIR = SQL_DIR / "seeds"

_VALUE = re.compile(r"[a-z0-9][a-z0-9_+ -]*")
_NAME = re.compile(r"[a-z][a-z0-9_]*")


class SeedError(ValueError):
    """A seed file that cannot be used as a value set."""


def seed_names() -> tuple[str, ...]:
    """Every seed, by file name (without .csv), sorted."""
    return tuple(sorted(path.stem for path in SEEDS_DIR.glob("*.csv")))


@functools.cache
def load_seed(name: str) -> tuple[dict[str, str], ...]:
    """The rows of `sql/seeds/<name>.csv` in file order, each a dict of column -> text; checked, cached."""
    if not _NAME.fullmatch(name):
        raise SeedError(f"{name!r} is not a seed name")
    path = SEEDS_DIR / f"{name}.csv"
    if not path.is_file():
        raise SeedError(f"no seed {name!r} ({path} does not exist)")
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, strict=True)
        columns = reader.fieldnames or []
        rows = tuple(reader)
    if not columns or columns[0] != "value":
        raise SeedError(f"seed {name}: the first column must be 'value', not {columns[:1]}")
    for column in columns:
        if not _NAME.fullmatch(column):
            raise SeedError(f"seed {name}: column {column!r} is not a lower-case identifier")
    if not rows:
        raise SeedError(f"seed {name}: no values")
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):
        if None in row or any(row[c] is None for c in columns):
            raise SeedError(f"seed {name}, line {line}: not {len(columns)} fields")
        value = row["value"]
        if not _VALUE.fullmatch(value) or value != value.strip():
            raise SeedError(f"seed {name}, line {line}: {value!r} is not a lower-case value")
        if value in seen:
            raise SeedError(f"seed {name}, line {line}: {value!r} appears twice")
        seen.add(value)
    return rows


def value_set(name: str) -> tuple[str, ...]:
    """The values of seed `name`, in their canonical order."""
    return tuple(row["value"] for row in load_seed(name))


def seed_column(name: str, column: str) -> tuple[str, ...]:
    """A further column of seed `name`, as text, in the order of its values."""
    rows = load_seed(name)
    if column not in rows[0]:
        raise SeedError(f"seed {name} has no column {column!r}")
    return tuple(row[column] for row in rows)


def _sql_list(texts: tuple[str, ...]) -> str:
    if all(re.fullmatch(r"-?[0-9]+", t) for t in texts):
        return "[" + ", ".join(texts) + "]"  # an integer column (age_bands.min_years)
    return "[" + ", ".join("'" + t.replace("'", "''") + "'" for t in texts) + "]"


def macro_statements() -> list[str]:
    """The `create or replace temp macro seed_...()` statements of every seed."""
    statements = []
    for name in seed_names():
        rows = load_seed(name)
        for column in rows[0]:
            macro = f"seed_{name}" if column == "value" else f"seed_{name}_{column}"
            texts = tuple(row[column] for row in rows)
            statements.append(f"create or replace temp macro {macro}() as {_sql_list(texts)}")
    return statements


def create_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Make every seed readable from SQL on this connection (see the module docstring)."""
    for statement in macro_statements():
        con.execute(statement)
