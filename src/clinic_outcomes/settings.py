"""Settings: one TOML file holds what a clinic network changes.

Every setting has the default that docs/rules.md names, so no file is
needed to start. A setting with a wrong type or an unknown name is refused with
a message that names it.

    [rules]
    retreatment_window_hours = 72     # R1
    plan_weeks = 6                    # R2 (a plan's own planned_weeks wins)
    mcid_points = 2                   # R3-R5
    min_cell_patients = 11            # small-cell suppression in reports
    relief_followup_days = 42         # R4 follow-up horizon

    timezone = "UTC"                  # zone for naive timestamps of clinics not listed below

    [clinics.clinic_nyc]
    timezone = "America/New_York"
    name = "Manhattan Midtown"        # shown in reports; the id where none is set

    [schedule]
    cron = "0 2 * * *"
    timezone = "America/New_York"

    [warehouse]
    memory_limit = "4GB"              # DuckDB's working memory per connection; beyond it, it spills to disk
    storage_version = "v1.5.0"        # DuckDB file format the published warehouse is written in

    [validation]
    full_on = "sunday"                # the as-of weekday whose night validates every row ("daily": every night)
    beside_metrics_up_to = 2000000    # sessions: a validation reading more runs before the metrics, not beside them

    [report]
    pdf_processes = 0                 # processes typesetting the PDFs side by side (0: one per core)

The storage version defaults to one the previous DuckDB release line (1.5) opens: DuckDB 2.0's own default
cannot be read by 1.5, and analysts' tools (DBeaver's driver, a pinned notebook) lag behind. "latest" writes
the newest format this DuckDB knows. Any version DuckDB itself accepts is allowed (checked when the settings
are read, so a wrong one is refused before a night starts).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class SettingsError(ValueError):
    """A settings file that cannot be used; the message names the setting."""


@dataclass(frozen=True)
class Rules:
    retreatment_window_hours: float = 72.0
    plan_weeks: int = 6
    mcid_points: float = 2.0
    min_cell_patients: int = 11
    relief_followup_days: int = 42


@dataclass(frozen=True)
class Schedule:
    cron: str = "0 2 * * *"
    timezone: str | None = None  # None: the network's default timezone


# DuckDB's default is 80% of the machine's memory; a night must leave room for the Python side (GX's pandas
# frames, Polars) and stay within a bounded peak, so the warehouse spills to disk beyond this.
DEFAULT_MEMORY_LIMIT = "4GB"
# The file format of the published warehouse: one DuckDB 1.5 opens (2.0's default, storage 69, it cannot).
DEFAULT_STORAGE_VERSION = "v1.5.0"
_STORAGE_VERSION = re.compile(r"^(v\d+\.\d+\.\d+|latest)$")
# A night validates the rows it wrote; on this weekday of its as-of date (and on any full rebuild) every row.
DEFAULT_FULL_VALIDATION_DAY = "sunday"
# Validation and the metrics run side by side while validation reads at most this many sessions; above it, one
# after the other. At 10M sessions (a full validation), side by side took 314 s and peaked at 10.7 GiB, one after
# the other 347 s and 7.35 GiB (benchmarks' 10M warehouse, 2 cores, 2026-12-08); at 1M the overlap saves ~10 s
# and both together stay under 3 GiB.
DEFAULT_BESIDE_METRICS_UP_TO = 2_000_000
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
FULL_VALIDATION_DAYS = (*WEEKDAYS, "daily")
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")


@dataclass(frozen=True)
class Settings:
    rules: Rules = field(default_factory=Rules)
    timezone: str = "UTC"
    clinic_timezones: dict[str, str] = field(default_factory=dict)
    clinic_names: dict[str, str] = field(default_factory=dict)
    schedule: Schedule = field(default_factory=Schedule)
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    storage_version: str = DEFAULT_STORAGE_VERSION
    full_validation_on: str = DEFAULT_FULL_VALIDATION_DAY  # [validation] full_on
    # [validation] beside_metrics_up_to: the most sessions a validation reads while the metrics run beside it
    validate_beside_metrics_up_to: int = DEFAULT_BESIDE_METRICS_UP_TO
    pdf_processes: int = 0  # [report] pdf_processes; 0: one per core

    def is_full_validation_day(self, as_of: dt.date) -> bool:
        """Whether the night of this as-of date validates every row ([validation] full_on)."""
        return self.full_validation_on == "daily" or WEEKDAYS[as_of.weekday()] == self.full_validation_on

    def timezone_of(self, clinic_id: str | None) -> str:
        """The IANA zone that naive timestamps of this clinic are read in."""
        return self.clinic_timezones.get(clinic_id or "", self.timezone)

    def clinic_name(self, clinic_id: str) -> str:
        """The clinic's display name (`[clinics.<id>] name`), its id where none is set."""
        return self.clinic_names.get(clinic_id, clinic_id)

    @property
    def schedule_timezone(self) -> str:
        return self.schedule.timezone or self.timezone

    def with_timezone(self, timezone: str | None) -> "Settings":
        """The same settings with the default zone replaced (the `--timezone` option)."""
        if timezone is None:
            return self
        _check_zone("timezone", timezone)
        return dataclasses.replace(self, timezone=timezone)


_NUMBER = (int, float)
_RULE_TYPES: dict[str, tuple[type, ...]] = {
    "retreatment_window_hours": _NUMBER,
    "plan_weeks": (int,),
    "mcid_points": _NUMBER,
    "min_cell_patients": (int,),
    "relief_followup_days": (int,),
}


def _check_zone(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SettingsError(f"setting {name!r} must be an IANA time zone name (text), got {value!r}")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"setting {name!r}: {value!r} is not a known IANA time zone") from None
    return value


def _check_table(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SettingsError(f"setting {name!r} must be a table, got {value!r}")
    return value


def _refuse_unknown(section: str, given: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(given) - known)
    if unknown:
        where = f"{section}." if section else ""
        raise SettingsError(
            f"unknown setting {where}{unknown[0]!r}; known: {', '.join(sorted(known))}"
        )


def _check_storage_version(value: Any) -> str:
    """A DuckDB storage version such as "v1.5.0" that this DuckDB can write (asked of DuckDB itself)."""
    if not isinstance(value, str) or not _STORAGE_VERSION.match(value):
        raise SettingsError(f'setting warehouse.storage_version must be a DuckDB version such as "v1.5.0", got {value!r}')
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(f"attach ':memory:' as storage_probe (storage_version '{value}')")  # value matched the pattern
    except duckdb.Error:
        raise SettingsError(
            f"setting warehouse.storage_version: {value!r} is not a storage version this DuckDB "
            f"{duckdb.__version__} can write"
        ) from None
    finally:
        con.close()
    return value


def parse_settings(data: dict[str, Any]) -> Settings:
    """Check a parsed TOML document and build Settings from it."""
    _refuse_unknown("", data, {"rules", "timezone", "clinics", "schedule", "warehouse", "validation", "report"})

    rules_in = _check_table("rules", data.get("rules", {}))
    _refuse_unknown("rules", rules_in, set(_RULE_TYPES))
    rule_values: dict[str, Any] = {}
    for key, value in rules_in.items():
        types = _RULE_TYPES[key]
        if isinstance(value, bool) or not isinstance(value, types):
            kind = "a whole number" if types == (int,) else "a number"
            raise SettingsError(f"setting rules.{key} must be {kind}, got {value!r}")
        if value <= 0:
            raise SettingsError(f"setting rules.{key} must be positive, got {value!r}")
        rule_values[key] = float(value) if types is _NUMBER else value
    if rule_values.get("plan_weeks", 6) > 52:
        raise SettingsError(f"setting rules.plan_weeks must be at most 52, got {rule_values['plan_weeks']!r}")

    timezone = _check_zone("timezone", data.get("timezone", "UTC"))

    clinic_timezones: dict[str, str] = {}
    clinic_names: dict[str, str] = {}
    for clinic_id, clinic in _check_table("clinics", data.get("clinics", {})).items():
        clinic = _check_table(f"clinics.{clinic_id}", clinic)
        _refuse_unknown(f"clinics.{clinic_id}", clinic, {"timezone", "name"})
        if "timezone" in clinic:
            clinic_timezones[clinic_id] = _check_zone(f"clinics.{clinic_id}.timezone", clinic["timezone"])
        if "name" in clinic:
            name = clinic["name"]
            if not isinstance(name, str) or not name.strip():
                raise SettingsError(f"setting clinics.{clinic_id}.name must be a non-empty text, got {name!r}")
            clinic_names[clinic_id] = name.strip()

    schedule_in = _check_table("schedule", data.get("schedule", {}))
    _refuse_unknown("schedule", schedule_in, {"cron", "timezone"})
    cron = schedule_in.get("cron", Schedule.cron)
    if not isinstance(cron, str) or len(cron.split()) != 5:
        raise SettingsError(f"setting schedule.cron must be a five-field cron expression, got {cron!r}")
    schedule_tz = schedule_in.get("timezone")
    if schedule_tz is not None:
        _check_zone("schedule.timezone", schedule_tz)

    warehouse_in = _check_table("warehouse", data.get("warehouse", {}))
    _refuse_unknown("warehouse", warehouse_in, {"memory_limit", "storage_version"})
    memory_limit = warehouse_in.get("memory_limit", DEFAULT_MEMORY_LIMIT)
    if not isinstance(memory_limit, str) or not _MEMORY.match(memory_limit.strip()):
        raise SettingsError(f'setting warehouse.memory_limit must be a size such as "4GB", got {memory_limit!r}')
    storage_version = _check_storage_version(warehouse_in.get("storage_version", DEFAULT_STORAGE_VERSION))

    validation_in = _check_table("validation", data.get("validation", {}))
    _refuse_unknown("validation", validation_in, {"full_on", "beside_metrics_up_to"})
    full_on = validation_in.get("full_on", DEFAULT_FULL_VALIDATION_DAY)
    if not isinstance(full_on, str) or full_on.strip().lower() not in FULL_VALIDATION_DAYS:
        raise SettingsError(
            f"setting validation.full_on must be a weekday name (monday ... sunday) or \"daily\", got {full_on!r}"
        )

    beside_metrics_up_to = validation_in.get("beside_metrics_up_to", DEFAULT_BESIDE_METRICS_UP_TO)
    if isinstance(beside_metrics_up_to, bool) or not isinstance(beside_metrics_up_to, int) or beside_metrics_up_to < 0:
        raise SettingsError(
            "setting validation.beside_metrics_up_to must be a whole number of sessions, 0 or more (0: validation "
            f"always runs before the metrics), got {beside_metrics_up_to!r}"
        )

    report_in = _check_table("report", data.get("report", {}))
    _refuse_unknown("report", report_in, {"pdf_processes"})
    pdf_processes = report_in.get("pdf_processes", 0)
    if isinstance(pdf_processes, bool) or not isinstance(pdf_processes, int) or not 0 <= pdf_processes <= 64:
        raise SettingsError(
            f"setting report.pdf_processes must be a whole number from 0 (one per core) to 64, got {pdf_processes!r}"
        )

    return Settings(
        rules=Rules(**rule_values),
        timezone=timezone,
        clinic_timezones=clinic_timezones,
        clinic_names=clinic_names,
        schedule=Schedule(cron=cron, timezone=schedule_tz),
        memory_limit=memory_limit.strip(),
        storage_version=storage_version,
        full_validation_on=full_on.strip().lower(),
        validate_beside_metrics_up_to=beside_metrics_up_to,
        pdf_processes=pdf_processes,
    )


def load_settings(path: str | Path | None) -> Settings:
    """Read the settings file; no file means every default."""
    if path is None:
        return Settings()
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"settings file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {path} is not valid TOML: {exc}") from None
    return parse_settings(data)
