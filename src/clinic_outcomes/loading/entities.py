"""The five export entities of exports.md: their columns and which are required.

Typing, ranges and enum checks live in `sql/loading/staging/<entity>.sql`; this module
only knows the column names, which the loader needs before SQL can run (to check
a file's header and to lay every file out with the same columns).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entity:
    name: str
    columns: tuple[str, ...]
    required: frozenset[str]
    # Columns never stored anywhere (exports.md, patients): dropped from rejected-row records too.
    never_stored: frozenset[str] = frozenset()


def _entity(name: str, columns: str, required: str, never_stored: str = "") -> Entity:
    return Entity(
        name=name,
        columns=tuple(columns.split()),
        required=frozenset(required.split()),
        never_stored=frozenset(never_stored.split()),
    )


# Load order matters: plans first, so the time zone of a patient's latest plan
# is known when check-ins and patients of the same night are read.
ENTITIES: dict[str, Entity] = {
    e.name: e
    for e in (
        _entity(
            "plans",
            "plan_id patient_id clinic_id start_date planned_weeks planned_sessions pcp_cleared chronicity status updated_at",
            "plan_id patient_id clinic_id start_date status updated_at",
        ),
        _entity(
            "sessions",
            "session_id patient_id plan_id clinic_id clinician_id clinician_role started_at status "
            "therapies condition pain_before pain_after aftercare adverse_event updated_at",
            "session_id patient_id clinic_id clinician_id clinician_role started_at status therapies updated_at",
        ),
        _entity("needle_sites", "session_id site side needles", "session_id site side"),
        _entity(
            "pain_checkins",
            "checkin_id patient_id recorded_at pain channel",
            "checkin_id patient_id recorded_at pain",
        ),
        _entity(
            "patients",
            "patient_id full_name date_of_birth sex phone postal_code updated_at",
            "patient_id updated_at",
            never_stored="full_name date_of_birth phone postal_code",
        ),
    )
}

# Values that must never reach the warehouse, reports or logs, in any entity.
DIRECT_IDENTIFIERS = frozenset({"patient_id", "full_name", "date_of_birth", "phone", "postal_code"})

FILE_SUFFIXES = (".csv.gz", ".csv", ".parquet")


def entity_of(filename: str) -> tuple[str, str] | None:
    """(entity, format) for an export file name, or None for a file that is not one.

    Base name and extension match case-insensitively (exports.md): `Sessions.csv`, `PLANS.Csv.GZ`."""
    lower = filename.lower()
    for suffix in FILE_SUFFIXES:
        if lower.endswith(suffix):
            base = lower[: -len(suffix)]
            if base in ENTITIES:
                return base, suffix.lstrip(".")
    return None
