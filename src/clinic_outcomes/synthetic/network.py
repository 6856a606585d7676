"""The simulated clinic network: clinics, clinicians, patients, plans, sessions, needle sites, pain and
check-ins, as numpy arrays (steps 1-6 of clinic_outcomes.synthetic.generate)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl

from clinic_outcomes.seeds import seed_column, value_set


DEFAULT_END_DATE = dt.date(2026, 11, 23)  # fixed so the demo is reproducible; run it with --as-of 2026-11-24
# The demo's network: 18 months of steady history (plans start evenly over the whole span).
DEMO_DAYS = 548
DEMO_PATIENTS = 900
# Drops are nightly over the last DAILY_DROPS days; history older than that comes as one initial export
# (the day before the first nightly drop) holding each record's latest version, as when a clinic joins.
DAILY_DROPS = 90

CLINICS: tuple[tuple[str, str, float], ...] = (
    # (clinic_id, IANA zone, share of patients)
    ("clinic_bos", "America/New_York", 0.14),
    ("clinic_nyc", "America/New_York", 0.22),
    ("clinic_chi", "America/Chicago", 0.18),
    ("clinic_den", "America/Denver", 0.12),
    ("clinic_phx", "America/Phoenix", 0.08),  # no daylight-saving time
    ("clinic_sea", "America/Los_Angeles", 0.10),
    ("clinic_lax", "America/Los_Angeles", 0.16),
)
# Display names the generated settings give the clinics ([clinics.<id>] name): what the reports show.
CLINIC_NAMES = {
    "clinic_bos": "Boston Back Bay", "clinic_nyc": "New York Midtown", "clinic_chi": "Chicago Loop",
    "clinic_den": "Denver Highlands", "clinic_phx": "Phoenix Arcadia", "clinic_sea": "Seattle Capitol Hill",
    "clinic_lax": "Los Angeles Westside",
}
# A network of another size (generate(clinics=N), N != len(CLINICS)) has clinics clinic_001 .. clinic_NNN, their
# zones cycling over these (the US zones of CLINICS, then zones east of UTC, whose DST, if any, ends in another
# week or starts in November), shares of patients by the fixed weights 1 + (i % 5) * 0.5 (no random draw, so
# every other draw of a seed stays as it is) and names like "Clinic 001 (Tokyo)".
GENERATED_ZONES = (
    "America/New_York", "America/Chicago", "America/Denver", "America/Phoenix", "America/Los_Angeles",
    "Europe/London", "Europe/Berlin", "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney", "Pacific/Auckland",
)


class Clinic(NamedTuple):
    id: str
    zone: str          # IANA zone: naive timestamps of the clinic are local time there
    share: float       # weight of the clinic among patients (normalised over the network)
    name: str          # display name ([clinics.<id>] name in the generated settings)


def clinic_table(clinics: int | None = None) -> tuple[Clinic, ...]:
    """The simulated network's clinics: CLINICS with CLINIC_NAMES for None or len(CLINICS), else `clinics`
    generated ones (see GENERATED_ZONES), the same for the same number."""
    if clinics is None or clinics == len(CLINICS):
        return tuple(Clinic(clinic_id, zone, share, CLINIC_NAMES[clinic_id]) for clinic_id, zone, share in CLINICS)
    if clinics < 1:
        raise ValueError(f"need at least 1 clinic, got {clinics}")
    out = []
    for i in range(clinics):
        zone = GENERATED_ZONES[i % len(GENERATED_ZONES)]
        city = zone.rsplit("/", 1)[-1].replace("_", " ")
        out.append(Clinic(f"clinic_{i + 1:03d}", zone, 1 + (i % 5) * 0.5, f"Clinic {i + 1:03d} ({city})"))
    return tuple(out)


# Case mix (R8). Chronicity of a plan: acute, subacute, chronic, not recorded (-1).
CHRONICITY = value_set("chronicity")
CHRONICITY_SHARES = (0.32, 0.25, 0.38, 0.05)
# One clinic treats a hard case mix (mostly chronic pain, lower baseline pain): its raw outcomes are the
# network's lowest, its outcomes for that case mix ordinary. Another does better than its case mix predicts.
# In a network of another size they are the clinics at the same positions (the 4th and the 6th), if it has them.
HARD_CASE_MIX_CLINIC = "clinic_den"
HARD_CHRONICITY_SHARES = (0.08, 0.14, 0.75, 0.03)
HARD_BASELINE_MEAN = 5.2
BASELINE_MEAN, BASELINE_SD = 6.3, 1.3
EDGE_CLINIC = "clinic_sea"
# Outcomes follow the form of R8's models, so that adjusting for case mix takes out the case mix and nothing
# else (a mechanism the models' terms cannot express, such as change in proportion to baseline, would leave
# the hard-case-mix clinic outside the funnel however fair its care):
# - a plan's pain falls by `change` points, reached PROGRESS_WEEKS weeks after its first week and kept, with
#   change = eta + e: eta = CHANGE_AT_BASELINE_MEAN + CHANGE_PER_POINT * (baseline - BASELINE_MEAN) + the
#   effects of its condition, its patient's age band and sex and its chronicity (+ EDGE_CHANGE at the edge
#   clinic), e logistic with scale CHANGE_SCALE; so E[change] is linear and P(change >= MCID) logistic in them;
# - a needling session relieves at least the MCID (2 points) with probability expit(RELIEF_LOGIT_AT_BASELINE_MEAN
#   + RELIEF_LOGIT_PER_POINT * (pain_before - BASELINE_MEAN) + the same categories' effects (+ EDGE_RELIEF_LOGIT)).
# Effects by level, in seed order with "not recorded" last; 0 for every reference.
CHANGE_AT_BASELINE_MEAN, CHANGE_PER_POINT, CHANGE_SCALE, EDGE_CHANGE = 3.4, 0.45, 0.6, 0.8
PROGRESS_WEEKS = 3
RELIEF_LOGIT_AT_BASELINE_MEAN, RELIEF_LOGIT_PER_POINT, EDGE_RELIEF_LOGIT = 1.25, 0.12, 0.65
RELIEF_AMOUNT_SHARES = ((0.4, 0.6), (0.45, 0.33, 0.15, 0.07))  # points 0-1 without, 2-5 with meaningful relief
CASE_MIX_EFFECTS = {  # term -> (effects on change points, effects on the relief log-odds)
    "condition": ((0.0, 0.3, -0.2, -0.5, 0.1, -0.3), (0.0, 0.15, -0.1, -0.3, 0.1, -0.2)),
    "chronicity": ((0.0, -0.5, -1.3, -0.6), (0.0, -0.3, -0.8, -0.4)),
    "age_band": ((0.4, 0.3, 0.15, 0.0, -0.15, -0.3, -0.45, -0.6, 0.0), (0.3, 0.2, 0.1, 0.0, -0.1, -0.2, -0.3, -0.4, 0.0)),
    "sex": ((0.0, 0.1, 0.0, 0.0, 0.0), (0.0, 0.1, 0.0, 0.0, 0.0)),
}
# Patients: age (years at the first day, then up to ten more) and sex; the age band is sql/seeds/age_bands.csv's
# at the evaluation date (the day after the last drop), as core.patients computes it.
AGE_BASE_YEARS = (12, 22, 35, 45, 55, 65, 75, 84)
AGE_BASE_SHARES = (0.02, 0.12, 0.18, 0.2, 0.2, 0.15, 0.1, 0.03)
SEX_SHARES = (0.55, 0.42, 0.01, 0.01, 0.01)  # female, male, other, unknown, not recorded
DOB_MISSING = 0.03
LEGACY_DROPS = 9  # the first nightly drops come from an older export version, without plans.chronicity

ROLES = value_set("clinician_roles")
ROLE_SHARES = (0.45, 0.20, 0.15, 0.08, 0.08, 0.04)

CONDITIONS = value_set("conditions")
CONDITION_SHARES = (0.38, 0.22, 0.10, 0.08, 0.14, 0.08)

# Eight spots (site, side) per condition: two disjoint pools of four per plan.
SPOTS: dict[str, tuple[tuple[str, str], ...]] = {
    "low_back_pain": tuple(
        (site, side) for site in ("lumbar_multifidus", "quadratus_lumborum", "gluteus_medius", "iliocostalis_lumborum")
        for side in ("left", "right")
    ),
    "neck_pain": tuple(
        (site, side) for site in ("upper_trapezius", "levator_scapulae", "cervical_multifidus", "splenius_capitis")
        for side in ("left", "right")
    ),
    "cervicogenic_headache": (
        ("suboccipitals", "midline"), ("semispinalis_capitis", "midline"),
        ("upper_trapezius", "left"), ("upper_trapezius", "right"),
        ("sternocleidomastoid", "left"), ("sternocleidomastoid", "right"),
        ("splenius_capitis", "left"), ("splenius_capitis", "right"),
    ),
    "carpal_tunnel_syndrome": tuple(
        (site, side) for site in ("pronator_teres", "flexor_carpi_radialis", "flexor_digitorum_superficialis", "abductor_pollicis_brevis")
        for side in ("left", "right")
    ),
    "shoulder_pain": tuple(
        (site, side) for site in ("infraspinatus", "supraspinatus", "teres_minor", "middle_deltoid")
        for side in ("left", "right")
    ),
    "other": (
        ("gastrocnemius", "left"), ("gastrocnemius", "right"),
        ("vastus_lateralis", "left"), ("vastus_lateralis", "right"),
        ("tensor_fasciae_latae", "left"), ("tensor_fasciae_latae", "right"),
        ("thoracic_multifidus", "midline"), ("rhomboid_major", "right"),
    ),
}

# Flat tables indexed by condition * 8 + spot.
SITE_TABLE = tuple(site for c in CONDITIONS for site, _ in SPOTS[c])
SIDE_TABLE = tuple(side for c in CONDITIONS for _, side in SPOTS[c])

THERAPIES = value_set("therapies")
ADJUNCT_SHARES = {  # therapy index -> share among adjunct draws
    1: 0.34, 2: 0.34, 3: 0.10, 4: 0.06, 5: 0.12, 6: 0.01, 7: 0.03,
}

AFTERCARE = value_set("aftercare")
# Median relief duration in hours by aftercare advice (lognormal, sigma RELIEF_SIGMA).
RELIEF_MEDIAN_HOURS = {"heat": 132.0, "ice": 90.0, "none": 54.0, None: 72.0}
RELIEF_SIGMA = 0.9

ADVERSE = value_set("adverse_events")
ADVERSE_SHARES_NEEDLING = (0.7690, 0.15, 0.05, 0.012, 0.012, 0.002, 0.005)

CHANNELS = value_set("channels")
SEXES = value_set("sexes")
SESSION_STATUSES = value_set("session_statuses")
PLAN_STATUSES = value_set("plan_statuses")

RATES = {
    "second_plan": 0.15,          # patients with a second plan after the first
    "course_abandoned": 0.12,     # plans whose patient stops coming before the final week
    "course_discharged_early": 0.07,
    "course_cancelled": 0.05,
    "mix_needling_only": 0.10,    # plans with no adjunct therapy at all
    "mix_without_needling": 0.03,
    "session_cancelled": 0.07,
    "session_no_show": 0.05,
    "retreatment_when_close": 0.30,  # of needling sessions < 72 h after the previous one
    "pain_after_corrected": 0.04,
    "adverse_event_reported_late": 0.30,  # of sessions with an adverse event
    "stale_resend": 0.15,         # of corrected sessions: old version re-sent after the correction
    "identical_resend": 0.01,     # sessions re-sent unchanged (same updated_at) the next night
    "sites_resent": 0.03,         # needling sessions whose sites are re-sent whole, corrected
    "checkin_resent": 0.02,
    "checkin_late": 0.05,         # check-ins exported the night after they were recorded
    "patient_updated": 0.06,
    "timestamp_offset": 0.12,     # timestamps written with their UTC offset
    "timestamp_z": 0.08,          # timestamps written in UTC with Z
    "no_checkins_patient": 0.25,  # patients who never send a check-in
}

WEEKLY_PATTERNS = {1: (0,), 2: (0, 3), 3: (0, 2, 4)}
SESSION_START_MIN, SESSION_START_MAX = 7 * 60, 19 * 60  # local clinic hours, far from DST's 1-3 am

FIRST_NAMES = ("Ash", "Briar", "Cedar", "Dale", "Elm", "Fern", "Glen", "Hazel", "Iris", "Juniper", "Kit", "Linden", "Moss", "Nell", "Oak", "Pine", "Quill", "Rowan", "Sage", "Tansy", "Umber", "Vale", "Wren", "Yarrow")
LAST_NAMES = ("Testwood", "Mockridge", "Fakeley", "Sampleton", "Placeholm", "Dummond", "Fictor", "Synthby", "Madeup", "Notreal")

FAKE_NAMES = tuple(
    spelling
    for style in range(3)
    for first in FIRST_NAMES
    for last in LAST_NAMES
    for spelling in [(f"{first} {last}", f"{last}, {first}", f'{first} "{first[:2]}" {last}')[style]]
)
FAKE_PHONES = tuple(f"555-01{x:02d}" for x in range(100))  # 555-0100..0199: reserved for fiction
FAKE_POSTAL_CODES = tuple(f"000{x:02d}" for x in range(100))  # no US ZIP code starts with 000

ENTITY_COLUMNS: dict[str, tuple[str, ...]] = {
    "sessions": ("session_id", "patient_id", "plan_id", "clinic_id", "clinician_id", "clinician_role", "started_at", "status", "therapies", "condition", "pain_before", "pain_after", "aftercare", "adverse_event", "updated_at"),
    "needle_sites": ("session_id", "site", "side", "needles"),
    "plans": ("plan_id", "patient_id", "clinic_id", "start_date", "planned_weeks", "planned_sessions", "pcp_cleared", "chronicity", "status", "updated_at"),
    "pain_checkins": ("checkin_id", "patient_id", "recorded_at", "pain", "channel"),
    "patients": ("patient_id", "full_name", "date_of_birth", "sex", "phone", "postal_code", "updated_at"),
}
ENUM_COLUMNS = {"chronicity", "clinician_role", "status", "condition", "aftercare", "adverse_event", "side", "channel", "sex"}
BOOL_STYLES = (("true", "false"), ("yes", "no"), ("1", "0"), ("TRUE", "FALSE"), ("Yes", "No"))

EPOCH = dt.date(1970, 1, 1)
DAY = 86_400


@dataclass(frozen=True)
class PlantedRow:
    """A malformed row written on purpose (dirty mode): the loader must reject exactly it."""
    path: str          # relative to out, e.g. "2026-10-02/sessions.csv"
    line: int          # physical line number in the (decompressed) file; the header is line 1
    entity: str
    kind: str          # missing_required, bad_timestamp, out_of_range, unknown_enum, bad_bool, too_many_columns
    column: str | None
    value: str | None


@dataclass(frozen=True)
class PlantedFile:
    """A malformed or stray file written on purpose (dirty mode)."""
    path: str
    entity: str | None
    kind: str          # missing_column, garbled_gzip, stray_file, unknown_column
    rows: int          # data rows in it (lost when the file is rejected)
    column: str | None = None


@dataclass(frozen=True)
class GenerationSummary:
    out: Path
    settings_path: Path
    seed: int
    dirty: bool
    first_date: dt.date
    end_date: dt.date
    drops: int
    files: dict[str, int]              # by format: csv, csv.gz, parquet
    clinics: int
    clinicians: int
    patients: int
    plans: int
    sessions: int                      # distinct sessions (final versions)
    needle_sites: int                  # site rows of the final versions
    pain_checkins: int                 # distinct check-ins
    rows_written: dict[str, int]       # data rows written per entity, re-sent versions included
    planted: dict[str, int]            # phenomenon -> exact count in the final state
    malformed_rows: tuple[PlantedRow, ...] = ()
    malformed_files: tuple[PlantedFile, ...] = ()
    rates: dict[str, float] = field(default_factory=lambda: dict(RATES))


# --------------------------------------------------------------------------- helpers


def _choice(rng: np.random.Generator, n: int, shares) -> np.ndarray:
    shares = np.asarray(shares, dtype=float)
    return rng.choice(len(shares), size=n, p=shares / shares.sum())


def _within_group_rank(group: np.ndarray) -> np.ndarray:
    """0, 1, 2 ... within runs of equal values of a sorted array."""
    n = len(group)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[True, group[1:] != group[:-1]]
    start_pos = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    return np.arange(n) - start_pos


def _zone_names(clinics: tuple[Clinic, ...]) -> list[str]:
    return sorted({clinic.zone for clinic in clinics})


def _local_to_utc(local_sec: np.ndarray, zone_idx: np.ndarray, zones: list[str]) -> np.ndarray:
    """Naive local seconds -> UTC epoch seconds, DST-correct per IANA zone (zone_idx indexes `zones`)."""
    out = np.empty(len(local_sec), dtype=np.int64)
    for z, zone in enumerate(zones):
        mask = zone_idx == z
        if not mask.any():
            continue
        local = pl.from_epoch(pl.Series(local_sec[mask]), time_unit="s")
        out[mask] = local.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null").dt.epoch("s").to_numpy()
    return out


def _format_ts(local_sec: np.ndarray, zone_idx: np.ndarray, style: np.ndarray, zones: list[str]) -> pl.Series:
    """ISO 8601 text: style 0 naive local, 1 local with its UTC offset, 2 UTC with Z (zone_idx indexes `zones`)."""
    out = pl.from_epoch(pl.Series(local_sec), time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%S")
    for z, zone in enumerate(zones):
        for s, fmt in ((1, "%Y-%m-%dT%H:%M:%S%:z"), (2, "%Y-%m-%dT%H:%M:%SZ")):
            where = np.flatnonzero((zone_idx == z) & (style == s))
            if not len(where):
                continue
            aware = pl.from_epoch(pl.Series(local_sec[where]), time_unit="s").dt.replace_time_zone(zone, ambiguous="earliest")
            if s == 2:
                aware = aware.dt.convert_time_zone("UTC")
            out = out.scatter(where, aware.dt.strftime(fmt))
    return out


def _ts_styles(rng: np.random.Generator, n: int) -> np.ndarray:
    return _choice(rng, n, (1 - RATES["timestamp_offset"] - RATES["timestamp_z"], RATES["timestamp_offset"], RATES["timestamp_z"]))


def _take(table: pl.Series, idx: np.ndarray) -> pl.Series:
    """table[idx] with null where idx is -1, without Python objects per row."""
    idx = np.asarray(idx, dtype=np.int64)
    out = table.gather(np.maximum(idx, 0))
    missing = np.flatnonzero(idx < 0)
    return out.scatter(missing, None) if len(missing) else out


def _lookup(values: tuple[str, ...], idx: np.ndarray) -> pl.Series:
    """Index array (-1 = null) -> text series."""
    return _take(pl.Series(list(values), dtype=pl.String), idx)


def _masked(values, valid: np.ndarray) -> pl.Series:
    """The values where valid, null elsewhere."""
    frame = pl.DataFrame({"v": values, "ok": valid})
    return frame.select(pl.when(pl.col("ok")).then(pl.col("v")).alias("v")).to_series()


def _nullable_int(values: np.ndarray, valid: np.ndarray) -> pl.Series:
    return _masked(values.astype(np.int64), valid)


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pl.Series:
    """Identifiers like PLN-000042, built without a Python loop over rows."""
    numbers = pl.Series(np.asarray(numbers, dtype=np.int64))
    return pl.select(pl.lit(prefix) + numbers.cast(pl.String).str.zfill(width)).to_series()


# --------------------------------------------------------------------------- the network


@dataclass
class _World:
    first_day: int                # epoch days of the first drop
    days: int
    clinic_zone: np.ndarray       # clinic -> zone index
    clinician_clinic: np.ndarray
    clinician_role: np.ndarray
    patient_clinic: np.ndarray
    clinicians_by_clinic: np.ndarray  # clinician indices grouped by clinic
    clinic_offsets: np.ndarray        # where each clinic's group starts
    clinic_counts: np.ndarray
    clinics: tuple[Clinic, ...]       # the clinic table (clinic_table): index -> id, zone, share, name
    zones: list[str]                  # zone index -> IANA zone
    patient_mix: dict[str, np.ndarray] = field(default_factory=dict)  # see _patient_case_mix

    def clinic_position(self, clinic_id: str) -> int:
        """The index of the clinic at `clinic_id`'s position in CLINICS; -1 if this network has none there."""
        position = [c for c, _, _ in CLINICS].index(clinic_id)
        return position if position < len(self.clinics) else -1

    def pick_clinician(self, rng: np.random.Generator, clinic: np.ndarray) -> np.ndarray:
        """A random clinician of each given clinic."""
        draw = (rng.random(len(clinic)) * self.clinic_counts[clinic]).astype(np.int64)
        return self.clinicians_by_clinic[self.clinic_offsets[clinic] + draw]


def _network(rng: np.random.Generator, patients: int, first_day: int, days: int, clinics: tuple[Clinic, ...]) -> _World:
    zones = _zone_names(clinics)
    n_clinics = len(clinics)
    clinic_zone = np.array([zones.index(clinic.zone) for clinic in clinics])
    n_clinicians = max(3 * n_clinics, len(ROLES), patients // 25)
    clinician_clinic = np.arange(n_clinicians) % n_clinics
    clinician_role = _choice(rng, n_clinicians, ROLE_SHARES)
    clinician_role[: len(ROLES)] = np.arange(len(ROLES))  # every role is present
    patient_clinic = _choice(rng, patients, [clinic.share for clinic in clinics])
    groups = [np.flatnonzero(clinician_clinic == c) for c in range(n_clinics)]
    counts = np.array([len(g) for g in groups])
    return _World(
        first_day, days, clinic_zone, clinician_clinic, clinician_role, patient_clinic,
        np.concatenate(groups), np.r_[0, np.cumsum(counts)[:-1]], counts, clinics, zones,
    )


def _patient_case_mix(case_rng: np.random.Generator, world: _World, patients: int) -> dict[str, np.ndarray]:
    """Each patient's age in days at the first day, whether the date of birth is recorded, sex (index into
    SEXES, 4 = not recorded) and age band at the evaluation date (index into the seed, its length = not recorded)."""
    age_days = (np.asarray(AGE_BASE_YEARS)[_choice(case_rng, patients, AGE_BASE_SHARES)] * 365.25
                + case_rng.integers(0, 3650, patients)).astype(np.int64)
    dob_recorded = case_rng.random(patients) >= DOB_MISSING
    sex = _choice(case_rng, patients, SEX_SHARES)
    min_years = np.array([int(v) for v in seed_column("age_bands", "min_years")])
    years = np.floor((age_days + world.days) / 365.25)  # at the day after the last drop
    band = np.where(dob_recorded, np.searchsorted(min_years, years, side="right") - 1, len(min_years))
    return {"age_days": age_days, "dob_recorded": dob_recorded, "sex": sex, "age_band": band}


def _effects(term: str, which: int, level: np.ndarray) -> np.ndarray:
    """The case-mix effect of each level index (-1, not recorded, is the last entry)."""
    table = np.asarray(CASE_MIX_EFFECTS[term][which])
    return table[np.where(level < 0, len(table) - 1, level)]


def _plans(rng: np.random.Generator, world: _World, patients: int, case_rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Plans; `case_rng` draws the case mix (chronicity, baseline, response), apart from every other draw."""
    days = world.days
    second = rng.random(patients) < RATES["second_plan"]
    n = patients + int(second.sum())
    patient = np.r_[np.arange(patients), np.flatnonzero(second)]
    is_second = np.r_[np.zeros(patients, bool), np.ones(int(second.sum()), bool)]

    given_weeks = np.where(rng.random(n) < 0.65, 0, 6)  # 0: not given -> settings default 6
    other = rng.random(n) < 0.15
    given_weeks = np.where(other, rng.choice(np.array([4, 8, 10, 12]), n), given_weeks)
    weeks = np.where(given_weeks == 0, 6, given_weeks)
    window = weeks * 7

    # First plans start evenly over the whole span, so every month of the history is alike (those in its last
    # weeks are still in progress at the end); no month is emptied by plans crowded into the early weeks.
    start = (rng.random(n) * days).astype(np.int64)
    # Second plans start 7-30 days after the first plan's window.
    first_end = start[patient[is_second]] + window[patient[is_second]]
    start[is_second] = first_end + rng.integers(7, 31, int(is_second.sum()))
    keep = start < days - 1
    idx = np.flatnonzero(keep)

    plan = {
        "patient": patient[idx],
        "start": start[idx],
        "given_weeks": given_weeks[idx],
        "weeks": weeks[idx],
    }
    m = len(idx)
    plan["freq"] = rng.choice(np.array([1, 2, 3]), m, p=[0.25, 0.5, 0.25])
    plan["shift"] = np.where(plan["freq"] == 1, 0, rng.integers(0, 2, m))
    plan["course"] = _choice(rng, m, (1 - RATES["course_abandoned"] - RATES["course_discharged_early"] - RATES["course_cancelled"], RATES["course_abandoned"], RATES["course_discharged_early"], RATES["course_cancelled"]))
    plan["mix"] = _choice(rng, m, (1 - RATES["mix_needling_only"] - RATES["mix_without_needling"], RATES["mix_needling_only"], RATES["mix_without_needling"]))
    plan["condition"] = _choice(rng, m, CONDITION_SHARES)
    plan["clinic"] = world.patient_clinic[plan["patient"]]
    # The week sessions stop (exclusive): abandoned before the final week, early discharge after week 2+.
    stop = plan["weeks"].copy()
    abandoned = plan["course"] == 1
    early = plan["course"] == 2
    stop[abandoned] = 1 + (rng.random(int(abandoned.sum())) * (plan["weeks"][abandoned] - 2)).astype(np.int64)
    stop[early] = 2 + (rng.random(int(early.sum())) * (plan["weeks"][early] - 3)).astype(np.int64)
    plan["stop_week"] = stop
    plan["planned_sessions"] = np.where(rng.random(m) < 0.3, np.floor(0.8 * plan["weeks"] * plan["freq"]).astype(np.int64), 0)
    plan["pcp_cleared"] = _choice(rng, m, (0.88, 0.08, 0.04))  # true, false, null
    plan["preferred_min"] = SESSION_START_MIN + 15 * rng.integers(0, (SESSION_START_MAX - 60 - SESSION_START_MIN) // 15 + 1, m)
    hard = plan["clinic"] == world.clinic_position(HARD_CASE_MIX_CLINIC)
    edge = plan["clinic"] == world.clinic_position(EDGE_CLINIC)
    chronicity = np.where(hard, _choice(case_rng, m, HARD_CHRONICITY_SHARES), _choice(case_rng, m, CHRONICITY_SHARES))
    plan["chronicity"] = np.where(chronicity == 3, -1, chronicity)
    plan["edge"] = edge
    # Whole points: the first week's sessions see the baseline itself (R5's baseline is their pain_before).
    plan["baseline"] = np.clip(np.rint(case_rng.normal(np.where(hard, HARD_BASELINE_MEAN, BASELINE_MEAN), BASELINE_SD)), 2, 9)
    mix = world.patient_mix
    levels = {"condition": plan["condition"], "chronicity": plan["chronicity"],
              "age_band": mix["age_band"][plan["patient"]], "sex": np.where(mix["sex"] == 4, -1, mix["sex"])[plan["patient"]]}
    change = CHANGE_AT_BASELINE_MEAN + CHANGE_PER_POINT * (plan["baseline"] - BASELINE_MEAN) + np.where(edge, EDGE_CHANGE, 0.0)
    relief_logit = RELIEF_LOGIT_AT_BASELINE_MEAN + np.where(edge, EDGE_RELIEF_LOGIT, 0.0)
    for term, level in levels.items():
        change = change + _effects(term, 0, level)
        relief_logit = relief_logit + _effects(term, 1, level)
    # Pain cannot fall below 0 nor (much) worsen: the rare draws beyond are clipped.
    plan["change"] = np.clip(change + case_rng.logistic(0.0, CHANGE_SCALE, m), -1.0, plan["baseline"])
    plan["relief_logit"] = relief_logit  # a needling session's, before its pain_before term
    plan["clinician"] = world.pick_clinician(rng, plan["clinic"])
    # Spot pools: a random order of the condition's eight spots; pool 0 = first four, pool 1 = last four.
    plan["spot_order"] = np.argsort(rng.random((m, 8)), axis=1)
    return plan


def _sessions(rng: np.random.Generator, world: _World, plan: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    m = len(plan["patient"])
    slots = plan["weeks"] * plan["freq"]
    p = np.repeat(np.arange(m), slots)
    slot = np.arange(len(p)) - np.repeat(np.cumsum(slots) - slots, slots)
    freq = plan["freq"][p]
    week = slot // freq
    k = slot % freq
    pattern = np.array([[0, 0, 0], [0, 3, 0], [0, 2, 4]])  # by freq-1, k
    day_in_week = np.where(freq == 1, rng.integers(0, 5, len(p)), pattern[freq - 1, k] + plan["shift"][p])
    day = plan["start"][p] + week * 7 + day_in_week
    keep = (week < plan["stop_week"][p]) & (day < world.days)
    cancelled_plan = plan["course"][p] == 3
    keep &= ~cancelled_plan | ((slot == 0) & (rng.random(len(p)) < 0.5))
    p, week, day = p[keep], week[keep], day[keep]
    n = len(p)

    offset = np.where(rng.random(n) < 0.55, 0, 15 * rng.integers(-8, 9, n))
    minute = np.clip(plan["preferred_min"][p] + offset, SESSION_START_MIN, SESSION_START_MAX)
    local = (world.first_day + day) * DAY + minute * 60
    clinic = plan["clinic"][p]
    zone = world.clinic_zone[clinic]
    instant = _local_to_utc(local, zone, world.zones)

    status = _choice(rng, n, (1 - RATES["session_cancelled"] - RATES["session_no_show"], RATES["session_cancelled"], RATES["session_no_show"]))
    mix = plan["mix"][p]
    needling = np.where(mix == 0, rng.random(n) < 0.85, mix == 1)
    adjunct_on = np.where(mix == 1, False, np.where(mix == 2, True, rng.random(n) < 0.8))
    adjunct_on |= ~needling  # every session has at least one therapy
    keys = np.array(list(ADJUNCT_SHARES))
    shares = np.array(list(ADJUNCT_SHARES.values()))
    first = keys[_choice(rng, n, shares)]
    second = np.where(rng.random(n) < 0.35, keys[_choice(rng, n, shares)], first)
    therapy_bits = np.where(needling, 1, 0) | np.where(adjunct_on, (1 << first) | (1 << second), 0)

    other_clinician = world.pick_clinician(rng, clinic)
    clinician = np.where(rng.random(n) < 0.85, plan["clinician"][p], other_clinician)

    completed = status == 0
    return {
        "plan": p, "patient": plan["patient"][p], "day": day, "week": week, "local": local, "instant": instant,
        "clinic": clinic, "zone": zone, "status": status, "therapy_bits": therapy_bits,
        "needling": needling & completed, "completed": completed, "clinician": clinician,
        "duration_min": rng.integers(30, 61, n),
    }


def _order_by_patient_time(s: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    order = np.lexsort((s["plan"], s["instant"], s["patient"]))
    return {k: v[order] for k, v in s.items()}


def _needle_spots(rng: np.random.Generator, s: dict[str, np.ndarray], plan: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Spots per needling session, with re-treatments under 72 h planted at a known rate."""
    nid = np.flatnonzero(s["needling"])  # already in patient, time order
    pat = s["patient"][nid]
    t = s["instant"][nid]
    same_patient = np.r_[False, pat[1:] == pat[:-1]]
    gap = np.where(same_patient, np.r_[0, np.diff(t)], np.iinfo(np.int64).max)
    close = gap < 72 * 3600
    planted = close & (rng.random(len(nid)) < RATES["retreatment_when_close"])
    switch = close & ~planted
    # Pool parity flips at every close, non-planted session, so two consecutive close
    # sessions never share a spot; it restarts at each patient's first needling session.
    flips = np.cumsum(switch)
    parity = (flips - _carry_forward(np.where(same_patient, -1, flips))) % 2
    n_spots = 1 + _choice(rng, len(nid), (0.25, 0.35, 0.25, 0.15))
    prev_spots = np.r_[0, n_spots[:-1]]
    shared = np.minimum(n_spots, prev_spots)
    exactly_72 = same_patient & (gap == 72 * 3600)

    rows = np.repeat(np.arange(len(nid)), n_spots)
    j = np.arange(len(rows)) - np.repeat(np.cumsum(n_spots) - n_spots, n_spots)
    plan_of = s["plan"][nid][rows]
    spot = plan["spot_order"][plan_of, parity[rows] * 4 + j]
    condition = plan["condition"][plan_of]
    sites = {
        "session_row": nid[rows],
        "spot_code": condition * 8 + spot,
        "needles": rng.integers(1, 7, len(rows)),
        "j": j,
        "parity": parity[rows],
        "plan": plan_of,
    }
    counts = {
        "retreatment_sessions_under_72h": int(planted.sum()),
        "retreatment_flags_under_72h": int(shared[planted].sum()),
        "spot_pairs_exactly_72h": int(shared[exactly_72].sum()),
        "needling_sessions_within_72h_of_previous": int(close.sum()),
    }
    return sites, counts


def _carry_forward(values: np.ndarray) -> np.ndarray:
    """Replace -1 with the last value that was not -1."""
    idx = np.where(values >= 0, np.arange(len(values)), 0)
    np.maximum.accumulate(idx, out=idx)
    return values[idx]


def _underlying(plan: dict[str, np.ndarray], p: np.ndarray, days_in: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The plan's pain trend on day `days_in` of the plan: the baseline through its first week, then falling
    by its `change` over PROGRESS_WEEKS weeks; observed with `noise` (-1, 0, +1) after the first week."""
    progress = np.clip((days_in - 7) / (7.0 * PROGRESS_WEEKS), 0.0, 1.0)
    noise = np.where(days_in < 7, 0, noise)
    return np.clip(np.rint(plan["baseline"][p] - plan["change"][p] * progress) + noise, 0, 10).astype(np.int64)


def _pain(rng: np.random.Generator, s: dict[str, np.ndarray], plan: dict[str, np.ndarray], n_patients: int, case_rng: np.random.Generator) -> dict[str, np.ndarray]:
    """pain_before / pain_after per session, walking each patient's sessions in time order.

    A needling session lowers pain by `relief` points; the relief lasts a drawn duration,
    and a later observation inside it sees the relieved level (never worse than the
    underlying trend). The loop runs over session ranks (at most a few dozen), each step
    vectorised over all patients.
    """
    n = len(s["patient"])
    p = s["plan"]
    noise = _choice(rng, n, (0.25, 0.5, 0.25)) - 1
    underlying = _underlying(plan, p, s["day"] - plan["start"][p], noise)
    # Case mix: whether a needling session relieves at least 2 points (R8's session model), then by how much.
    relief_draw = case_rng.random(n)
    relief_without = _choice(case_rng, n, RELIEF_AMOUNT_SHARES[0])
    relief_with = 2 + _choice(case_rng, n, RELIEF_AMOUNT_SHARES[1])
    minor_relief = (rng.random(n) < 0.3).astype(np.int64)
    drift = (rng.random(n) < 0.3).astype(np.int64)

    aftercare = np.where(
        s["needling"],
        _choice(rng, n, (0.40, 0.33, 0.24, 0.03)),
        _choice(rng, n, (0.15, 0.20, 0.60, 0.05)),
    )
    aftercare = np.where(aftercare == 3, -1, aftercare)
    aftercare = np.where(s["completed"], aftercare, -1)
    median = np.select([aftercare == 0, aftercare == 1, aftercare == 2], [RELIEF_MEDIAN_HOURS["ice"], RELIEF_MEDIAN_HOURS["heat"], RELIEF_MEDIAN_HOURS["none"]], RELIEF_MEDIAN_HOURS[None])
    duration_sec = (median * np.exp(RELIEF_SIGMA * rng.standard_normal(n)) * 3600).astype(np.int64)

    rank = _within_group_rank(s["patient"])
    before = np.full(n, -1, dtype=np.int64)
    after = np.full(n, -1, dtype=np.int64)
    last_t = np.full(n_patients, np.iinfo(np.int64).min // 2)
    last_d = np.zeros(n_patients, dtype=np.int64)
    last_before = np.zeros(n_patients, dtype=np.int64)
    last_after = np.zeros(n_patients, dtype=np.int64)
    order = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[order], np.arange(rank.max() + 2 if n else 1))
    for r in range(len(bounds) - 1):
        i = order[bounds[r]: bounds[r + 1]]
        pt = s["patient"][i]
        in_relief = (s["instant"][i] - last_t[pt]) < last_d[pt]
        relieved = np.minimum(last_after[pt] + drift[i], np.maximum(last_before[pt] - 2, last_after[pt]))
        b = np.where(in_relief, np.minimum(underlying[i], relieved), underlying[i])
        needling = s["needling"][i]
        odds = plan["relief_logit"][p[i]] + RELIEF_LOGIT_PER_POINT * (b - BASELINE_MEAN)
        relief = np.where(relief_draw[i] * (1 + np.exp(-odds)) < 1, relief_with[i], relief_without[i])
        a = np.where(needling, np.maximum(b - relief, 0), np.maximum(b - minor_relief[i], 0))
        done = s["completed"][i]
        before[i] = np.where(done, b, -1)
        after[i] = np.where(done, a, -1)
        upd = i[needling]
        pu = s["patient"][upd]
        last_t[pu] = s["instant"][upd]
        last_d[pu] = duration_sec[upd]
        last_before[pu] = before[upd]
        last_after[pu] = after[upd]

    adverse = np.where(
        s["needling"],
        _choice(rng, n, ADVERSE_SHARES_NEEDLING),
        np.where(rng.random(n) < 0.03, np.where(rng.random(n) < 0.7, 1, 6), 0),
    )
    adverse = np.where(s["completed"], adverse, -1)
    return {"pain_before": before, "pain_after": after, "aftercare": aftercare, "adverse": adverse, "duration_sec": duration_sec}


def _checkins(rng: np.random.Generator, world: _World, s: dict[str, np.ndarray], pain: dict[str, np.ndarray], plan: dict[str, np.ndarray], n_patients: int, end_day: int) -> dict[str, np.ndarray]:
    """Pain reported between sessions, observing the same relief curve as the sessions."""
    nid = np.flatnonzero(s["needling"])
    active = rng.random(n_patients) >= RATES["no_checkins_patient"]
    per_session = np.where(active[s["patient"][nid]], rng.poisson(1.5, len(nid)), 0)
    src = np.repeat(nid, per_session)
    n = len(src)
    after_days = np.clip(np.rint(rng.lognormal(np.log(2.5), 0.8, n)), 0, 21).astype(np.int64)
    session_day_sec = s["local"][src] - (s["local"][src] % DAY)
    minute = np.where(after_days == 0, rng.integers(20 * 60, 22 * 60, n), rng.integers(7 * 60, 22 * 60, n))
    local = session_day_sec + after_days * DAY + minute * 60
    keep = (local // DAY) <= end_day
    src, local = src[keep], local[keep]
    n = len(src)
    patient = s["patient"][src]
    zone = world.clinic_zone[world.patient_clinic[patient]]
    instant = _local_to_utc(local, zone, world.zones)

    # The latest needling session (of any plan of the patient) before each check-in.
    key_s = s["patient"][nid].astype(np.int64) << 33 | (s["instant"][nid] - 1_000_000_000)
    key_c = patient.astype(np.int64) << 33 | (instant - 1_000_000_000)
    last = nid[np.searchsorted(key_s, key_c, side="left") - 1]
    p = s["plan"][last]
    day = local // DAY - world.first_day
    noise = _choice(rng, n, (0.25, 0.5, 0.25)) - 1
    underlying = _underlying(plan, p, day - plan["start"][p], noise)
    in_relief = (instant - s["instant"][last]) < pain["duration_sec"][last]
    drift = (rng.random(n) < 0.3).astype(np.int64)
    lb, la = pain["pain_before"][last], pain["pain_after"][last]
    relieved = np.minimum(la + drift, np.maximum(lb - 2, la))
    value = np.where(in_relief, np.minimum(underlying, relieved), underlying)
    order = np.lexsort((patient, instant))
    channel = _choice(rng, n, (0.50, 0.35, 0.12, 0.03))
    return {
        "patient": patient[order], "local": local[order], "instant": instant[order], "zone": zone[order],
        "pain": value[order], "channel": np.where(channel == 3, -1, channel)[order],
    }
