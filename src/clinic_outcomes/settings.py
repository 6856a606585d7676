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

    [schedule]
    cron = "0 2 * * *"
    timezone = "America/New_York"

    [warehouse]
    memory_limit = "4GB"              # DuckDB's working memory per connection; beyond it, it spills to disk
"""

from __future__ import annotations

import dataclasses
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
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")


@dataclass(frozen=True)
class Settings:
    rules: Rules = field(default_factory=Rules)
    timezone: str = "UTC"
    clinic_timezones: dict[str, str] = field(default_factory=dict)
    schedule: Schedule = field(default_factory=Schedule)
    memory_limit: str = DEFAULT_MEMORY_LIMIT

    def timezone_of(self, clinic_id: str | None) -> str:
        """The IANA zone that naive timestamps of this clinic are read in."""
        return self.clinic_timezones.get(clinic_id or "", self.timezone)

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


def parse_settings(data: dict[str, Any]) -> Settings:
    """Check a parsed TOML document and build Settings from it."""
    _refuse_unknown("", data, {"rules", "timezone", "clinics", "schedule", "warehouse"})

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
    for clinic_id, clinic in _check_table("clinics", data.get("clinics", {})).items():
        clinic = _check_table(f"clinics.{clinic_id}", clinic)
        _refuse_unknown(f"clinics.{clinic_id}", clinic, {"timezone"})
        if "timezone" in clinic:
            clinic_timezones[clinic_id] = _check_zone(f"clinics.{clinic_id}.timezone", clinic["timezone"])

    schedule_in = _check_table("schedule", data.get("schedule", {}))
    _refuse_unknown("schedule", schedule_in, {"cron", "timezone"})
    cron = schedule_in.get("cron", Schedule.cron)
    if not isinstance(cron, str) or len(cron.split()) != 5:
        raise SettingsError(f"setting schedule.cron must be a five-field cron expression, got {cron!r}")
    schedule_tz = schedule_in.get("timezone")
    if schedule_tz is not None:
        _check_zone("schedule.timezone", schedule_tz)

    warehouse_in = _check_table("warehouse", data.get("warehouse", {}))
    _refuse_unknown("warehouse", warehouse_in, {"memory_limit"})
    memory_limit = warehouse_in.get("memory_limit", DEFAULT_MEMORY_LIMIT)
    if not isinstance(memory_limit, str) or not _MEMORY.match(memory_limit.strip()):
        raise SettingsError(f'setting warehouse.memory_limit must be a size such as "4GB", got {memory_limit!r}')

    return Settings(
        rules=Rules(**rule_values),
        timezone=timezone,
        clinic_timezones=clinic_timezones,
        schedule=Schedule(cron=cron, timezone=schedule_tz),
        memory_limit=memory_limit.strip(),
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
