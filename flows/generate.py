"""A synthetic clinic network's nightly EMR exports, seeded and byte-for-byte reproducible.

`generate(out)` writes one drop folder per day (`out/YYYY-MM-DD/`) in the format of
../shared/spec/exports.md and an `out/settings.toml` naming each clinic's time zone.
Every phenomenon the rules of rules.md measure is planted on purpose, at rates
documented in docs/synthetic-data.md, and counted exactly in the returned
`GenerationSummary`, so tests can compare what the pipeline finds with what was put in.

How it is built, in order (all vectorised; the only Python loops run over zones,
session ranks within a patient, drops and files — never over rows):

1. clinics, clinicians, patients (with fake direct identifiers to be de-identified);
2. plans (episodes of care) with an archetype each: full course, abandoned,
   discharged early, cancelled; needling-only or without needling;
3. sessions on fixed weekly patterns (gaps of at least two days, so only the
   immediately preceding needling session can be under 72 hours away);
4. needle sites drawn from two disjoint pools per plan: a session close (< 72 h) to the
   previous needling session switches pool, unless it is a planted re-treatment;
5. pain: an underlying per-plan trend, immediate relief after needling, and relief that
   lasts a drawn duration (longer with heat, then ice, then none);
6. check-ins between sessions that observe that same pain curve;
7. record versions (corrections, discharges, re-sends) spread over the drops, then
   the files, with every allowed variation of the CSV dialect.

The clean output is strictly valid; `dirty=True` adds malformed rows and files and
records each one in the summary.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

DEFAULT_END_DATE = dt.date(2026, 11, 23)  # fixed so the demo is reproducible; run it with --as-of 2026-11-24

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

ROLES = ("physical_therapist", "chiropractor", "acupuncturist", "nurse", "physician", "other")
ROLE_SHARES = (0.45, 0.20, 0.15, 0.08, 0.08, 0.04)

CONDITIONS = ("low_back_pain", "neck_pain", "cervicogenic_headache", "carpal_tunnel_syndrome", "shoulder_pain", "other")
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

THERAPIES = ("dry_needling", "manual_therapy", "therapeutic_exercise", "electrical_stimulation", "ultrasound", "heat_ice", "spinal_injection", "other")
ADJUNCT_SHARES = {  # therapy index -> share among adjunct draws
    1: 0.34, 2: 0.34, 3: 0.10, 4: 0.06, 5: 0.12, 6: 0.01, 7: 0.03,
}

AFTERCARE = ("ice", "heat", "none")
# Median relief duration in hours by aftercare advice (lognormal, sigma RELIEF_SIGMA).
RELIEF_MEDIAN_HOURS = {"heat": 132.0, "ice": 90.0, "none": 54.0, None: 72.0}
RELIEF_SIGMA = 0.9

ADVERSE = ("none", "soreness", "bruising", "swelling", "bleeding", "fainting", "other")
ADVERSE_SHARES_NEEDLING = (0.7690, 0.15, 0.05, 0.012, 0.012, 0.002, 0.005)

CHANNELS = ("sms", "app", "phone")

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
    "plans": ("plan_id", "patient_id", "clinic_id", "start_date", "planned_weeks", "planned_sessions", "pcp_cleared", "status", "updated_at"),
    "pain_checkins": ("checkin_id", "patient_id", "recorded_at", "pain", "channel"),
    "patients": ("patient_id", "full_name", "date_of_birth", "sex", "phone", "postal_code", "updated_at"),
}
ENUM_COLUMNS = {"clinician_role", "status", "condition", "aftercare", "adverse_event", "side", "channel", "sex"}
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


def _zone_names() -> list[str]:
    return sorted({zone for _, zone, _ in CLINICS})


def _local_to_utc(local_sec: np.ndarray, zone_idx: np.ndarray) -> np.ndarray:
    """Naive local seconds -> UTC epoch seconds, DST-correct per IANA zone."""
    out = np.empty(len(local_sec), dtype=np.int64)
    for z, zone in enumerate(_zone_names()):
        mask = zone_idx == z
        if not mask.any():
            continue
        local = pl.from_epoch(pl.Series(local_sec[mask]), time_unit="s")
        out[mask] = local.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null").dt.epoch("s").to_numpy()
    return out


def _format_ts(local_sec: np.ndarray, zone_idx: np.ndarray, style: np.ndarray) -> pl.Series:
    """ISO 8601 text: style 0 naive local, 1 local with its UTC offset, 2 UTC with Z."""
    out = pl.from_epoch(pl.Series(local_sec), time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%S")
    for z, zone in enumerate(_zone_names()):
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

    def pick_clinician(self, rng: np.random.Generator, clinic: np.ndarray) -> np.ndarray:
        """A random clinician of each given clinic."""
        draw = (rng.random(len(clinic)) * self.clinic_counts[clinic]).astype(np.int64)
        return self.clinicians_by_clinic[self.clinic_offsets[clinic] + draw]


def _network(rng: np.random.Generator, patients: int, first_day: int, days: int) -> _World:
    zones = _zone_names()
    n_clinics = len(CLINICS)
    clinic_zone = np.array([zones.index(zone) for _, zone, _ in CLINICS])
    n_clinicians = max(3 * n_clinics, patients // 25)
    clinician_clinic = np.arange(n_clinicians) % n_clinics
    clinician_role = _choice(rng, n_clinicians, ROLE_SHARES)
    clinician_role[: len(ROLES)] = np.arange(len(ROLES))  # every role is present
    patient_clinic = _choice(rng, patients, [share for _, _, share in CLINICS])
    groups = [np.flatnonzero(clinician_clinic == c) for c in range(n_clinics)]
    counts = np.array([len(g) for g in groups])
    return _World(
        first_day, days, clinic_zone, clinician_clinic, clinician_role, patient_clinic,
        np.concatenate(groups), np.r_[0, np.cumsum(counts)[:-1]], counts,
    )


def _plans(rng: np.random.Generator, world: _World, patients: int) -> dict[str, np.ndarray]:
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

    # First plans: most start early enough to finish inside the period; a fifth start late (in progress).
    late = rng.random(n) < 0.2
    early_span = np.maximum(days - window, 1)
    start = np.where(
        late,
        np.maximum(days - window, 0) + (rng.random(n) * np.minimum(window, days)).astype(np.int64),
        (rng.random(n) * early_span).astype(np.int64),
    )
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
    plan["baseline"] = np.clip(rng.normal(6.3, 1.3, m), 3, 9.4)
    responder = rng.random(m) < 0.65
    plan["slope"] = np.where(responder, rng.uniform(0.35, 0.8, m), rng.uniform(0.0, 0.15, m))  # points per week
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
    instant = _local_to_utc(local, zone)

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


def _pain(rng: np.random.Generator, s: dict[str, np.ndarray], plan: dict[str, np.ndarray], n_patients: int) -> dict[str, np.ndarray]:
    """pain_before / pain_after per session, walking each patient's sessions in time order.

    A needling session lowers pain by `relief` points; the relief lasts a drawn duration,
    and a later observation inside it sees the relieved level (never worse than the
    underlying trend). The loop runs over session ranks (at most a few dozen), each step
    vectorised over all patients.
    """
    n = len(s["patient"])
    p = s["plan"]
    weeks_in = (s["day"] - plan["start"][p]) / 7.0
    noise = _choice(rng, n, (0.25, 0.5, 0.25)) - 1
    underlying = np.clip(np.rint(np.maximum(plan["baseline"][p] - plan["slope"][p] * weeks_in, 1.0)) + noise, 0, 10).astype(np.int64)
    relief = _choice(rng, n, (0.10, 0.20, 0.30, 0.25, 0.10, 0.05))  # points, 0-5: ~70% reach the MCID of 2
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
        a = np.where(needling, np.maximum(b - relief[i], 0), np.maximum(b - minor_relief[i], 0))
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
    instant = _local_to_utc(local, zone)

    # The latest needling session (of any plan of the patient) before each check-in.
    key_s = s["patient"][nid].astype(np.int64) << 33 | (s["instant"][nid] - 1_000_000_000)
    key_c = patient.astype(np.int64) << 33 | (instant - 1_000_000_000)
    last = nid[np.searchsorted(key_s, key_c, side="left") - 1]
    p = s["plan"][last]
    day = local // DAY - world.first_day
    weeks_in = (day - plan["start"][p]) / 7.0
    noise = _choice(rng, n, (0.25, 0.5, 0.25)) - 1
    underlying = np.clip(np.rint(np.maximum(plan["baseline"][p] - plan["slope"][p] * weeks_in, 1.0)) + noise, 0, 10).astype(np.int64)
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


# --------------------------------------------------------------------------- versions and files


def generate(
    out: Path,
    *,
    patients: int = 400,
    days: int = 90,
    seed: int = 7,
    dirty: bool = False,
    end_date: dt.date | None = None,
) -> GenerationSummary:
    """Write a synthetic export (one drop folder per day up to end_date) and settings.toml into `out`."""
    if patients < 1 or days < 7:
        raise ValueError("need at least 1 patient and 7 days")
    out = Path(out)
    end_date = end_date or DEFAULT_END_DATE
    first_date = end_date - dt.timedelta(days=days - 1)
    first_day = (first_date - EPOCH).days
    end_day = (end_date - EPOCH).days
    rng = np.random.default_rng([seed, 0])

    world = _network(rng, patients, first_day, days)
    plan = _plans(rng, world, patients)
    s = _order_by_patient_time(_sessions(rng, world, plan))
    sites, planted = _needle_spots(rng, s, plan)
    pain = _pain(rng, s, plan, patients)
    chk = _checkins(rng, world, s, pain, plan, patients, end_day)

    frames, planted_versions, final_plan_status = _entity_frames(rng, world, plan, s, sites, pain, chk, patients, end_day)
    planted.update(planted_versions)
    planted.update(_plan_counts(plan, s, final_plan_status, world, end_day))
    planted.update(_session_counts(s, pain))
    planted["checkins_no_checkin_patients"] = int(patients - len(np.unique(chk["patient"])))

    if out.exists():
        for child in out.iterdir():
            if child.is_dir() and len(child.name) == 10 and child.name[4] == "-":
                shutil.rmtree(child)
    out.mkdir(parents=True, exist_ok=True)
    settings_path = out / "settings.toml"
    settings_path.write_text(_settings_toml())

    files, rows_written, bad_rows, bad_files = _write_drops(out, frames, first_date, days, seed, dirty)
    return GenerationSummary(
        out=out,
        settings_path=settings_path,
        seed=seed,
        dirty=dirty,
        first_date=first_date,
        end_date=end_date,
        drops=days,
        files=files,
        clinics=len(CLINICS),
        clinicians=len(world.clinician_role),
        patients=planted["patients_with_a_plan"],
        plans=len(plan["patient"]),
        sessions=len(s["patient"]),
        needle_sites=len(sites["spot_code"]),
        pain_checkins=len(chk["patient"]),
        rows_written=rows_written,
        planted=planted,
        malformed_rows=tuple(bad_rows),
        malformed_files=tuple(bad_files),
    )


def _settings_toml() -> str:
    lines = [
        "# Settings of the synthetic clinic network (flows/generate.py).",
        "# Naive timestamps in the exports are local time in these zones.",
        'timezone = "UTC"',
        "",
    ]
    for clinic_id, zone, _ in CLINICS:
        lines += [f"[clinics.{clinic_id}]", f'timezone = "{zone}"', ""]
    return "\n".join(lines)


def _plan_counts(plan, s, final_status, world: _World, end_day: int) -> dict[str, int]:
    course = plan["course"]
    window_end_day = plan["start"] + plan["weeks"] * 7  # first day after the window, relative to first_day
    as_of = end_day + 1 - world.first_day
    in_progress = (final_status == 0) & (as_of < window_end_day)
    return {
        "plans_abandoned": int((course == 1).sum()),
        "plans_discharged_early": int((course == 2).sum()),
        "plans_cancelled": int((course == 3).sum()),
        "plans_needling_only": int((plan["mix"] == 1).sum()),
        "plans_without_needling": int((plan["mix"] == 2).sum()),
        "plans_in_progress_at_as_of": int(in_progress.sum()),
        "plans_without_pcp_clearance": int((plan["pcp_cleared"] == 1).sum()),
        "plans_with_own_planned_weeks": int((plan["given_weeks"] > 0).sum()),
        "plans_with_planned_sessions": int((plan["planned_sessions"] > 0).sum()),
    }


def _session_counts(s, pain) -> dict[str, int]:
    meaningful = s["needling"] & (pain["pain_before"] - pain["pain_after"] >= 2)
    out = {
        "sessions_completed": int(s["completed"].sum()),
        "sessions_cancelled": int((s["status"] == 1).sum()),
        "sessions_no_show": int((s["status"] == 2).sum()),
        "needling_sessions": int(s["needling"].sum()),
        "needling_sessions_meaningful_relief": int(meaningful.sum()),
    }
    for k, name in enumerate(ADVERSE):
        if name != "none":
            out[f"adverse_{name}"] = int((s["needling"] & (pain["adverse"] == k)).sum())
    return out


def _entity_frames(rng, world: _World, plan, s, sites, pain, chk, n_patients: int, end_day: int):
    """Every record version as a text/typed frame with the drop (day index) it is exported in."""
    first_day = world.first_day
    last_drop = end_day - first_day
    counts: dict[str, int] = {}

    # ---- patients: first sent with their first plan; some updated later
    first_plan_start = np.full(n_patients, np.iinfo(np.int64).max)
    np.minimum.at(first_plan_start, plan["patient"], plan["start"])
    has_plan = first_plan_start < np.iinfo(np.int64).max
    pid = np.flatnonzero(has_plan)
    n = len(pid)
    mrn = 3_000_000 + pid * 13 + rng.integers(0, 13, n)
    patient_mrn = np.zeros(n_patients, dtype=np.int64)
    patient_mrn[pid] = mrn
    mrn_text = _ids("MRN", patient_mrn, 7)  # the EMR patient number: a direct identifier
    # Names come in three spellings, one with a comma and one with quotes, so CSV quoting is exercised.
    fn = rng.integers(0, len(FIRST_NAMES), n)
    ln = rng.integers(0, len(LAST_NAMES), n)
    name_style = _choice(rng, n, (0.85, 0.10, 0.02, 0.03))
    full_name = np.where(name_style == 3, -1, (name_style * len(FIRST_NAMES) + fn) * len(LAST_NAMES) + ln)
    age_days = (rng.choice(np.array([12, 22, 35, 45, 55, 65, 75, 84]), n, p=[0.02, 0.12, 0.18, 0.2, 0.2, 0.15, 0.1, 0.03]) * 365.25 + rng.integers(0, 3650, n)).astype(np.int64)
    dob = pl.Series((first_day - age_days).astype("datetime64[D]")).cast(pl.Date)
    dob = _masked(dob, rng.random(n) >= 0.03)
    sex = _choice(rng, n, (0.55, 0.42, 0.01, 0.01, 0.01))
    phone = np.where(rng.random(n) < 0.05, -1, rng.integers(0, 100, n))
    postal = np.where(rng.random(n) < 0.05, -1, rng.integers(0, 100, n))
    zone = world.clinic_zone[world.patient_clinic[pid]]
    local = (first_day + first_plan_start[pid]) * DAY + rng.integers(6 * 3600, 7 * 3600, n)
    updated = rng.random(n) < RATES["patient_updated"]
    later = first_plan_start[pid] + rng.integers(1, 40, n)
    updated &= later <= last_drop
    pat_local = np.r_[local, (first_day + later[updated]) * DAY + rng.integers(8 * 3600, 18 * 3600, int(updated.sum()))]
    pat_idx = np.r_[np.arange(n), np.flatnonzero(updated)]
    phone_v = np.r_[phone, rng.integers(0, 100, int(updated.sum()))]
    pat_zone = zone[pat_idx]
    patients = pl.DataFrame({
        "patient_id": mrn_text.gather(pid[pat_idx]),
        "full_name": _lookup(FAKE_NAMES, full_name[pat_idx]),
        "date_of_birth": dob.gather(pat_idx),
        "sex": _lookup(("female", "male", "other", "unknown"), np.where(sex == 4, -1, sex)[pat_idx]),
        "phone": _lookup(FAKE_PHONES, phone_v),
        "postal_code": _lookup(FAKE_POSTAL_CODES, postal[pat_idx]),
        "updated_at": _format_ts(pat_local, pat_zone, _ts_styles(rng, len(pat_idx))),
        "_drop": pat_local // DAY - first_day,
        "_order": _local_to_utc(pat_local, pat_zone),
    })
    counts["patients_updated"] = int(updated.sum())
    counts["patients_with_a_plan"] = n

    # ---- plans: created on their start date; a status change is a new version
    m = len(plan["patient"])
    plan_ids = _ids("PLN-", np.arange(m) + 1, 6)
    clinic_ids = pl.Series([c for c, _, _ in CLINICS], dtype=pl.String)
    pzone = world.clinic_zone[plan["clinic"]]
    created = (first_day + plan["start"]) * DAY + rng.integers(6 * 3600, 7 * 3600, m)
    last_session_day = np.full(m, -1)
    ordr = np.argsort(s["day"])
    last_session_day[s["plan"][ordr]] = s["day"][ordr]
    window_end = plan["start"] + plan["weeks"] * 7
    course = plan["course"]
    change_day = np.select(
        [course == 0, course == 1, course == 2, course == 3],
        [window_end + rng.integers(0, 6, m), window_end + rng.integers(7, 22, m), np.maximum(last_session_day, plan["start"]) + rng.integers(1, 4, m), np.maximum(last_session_day, plan["start"]) + rng.integers(1, 8, m)],
    )
    new_status = np.where(course == 3, 2, 1)  # cancelled, else discharged
    changes = (change_day <= last_drop) & ~((course == 1) & (rng.random(m) < 0.5))  # half the abandoned stay active
    final_status = np.where(changes, new_status, 0)
    ver_plan = np.r_[np.arange(m), np.flatnonzero(changes)]
    ver_status = np.r_[np.zeros(m, dtype=np.int64), new_status[changes]]
    ver_local = np.r_[created, (first_day + change_day[changes]) * DAY + rng.integers(12 * 3600, 18 * 3600, int(changes.sum()))]
    ver_zone = pzone[ver_plan]
    start_date = pl.Series((first_day + plan["start"]).astype("datetime64[D]")).cast(pl.Date)
    pcp = _masked(plan["pcp_cleared"] == 0, plan["pcp_cleared"] != 2)
    plans = pl.DataFrame({
        "plan_id": plan_ids.gather(ver_plan),
        "patient_id": mrn_text.gather(plan["patient"][ver_plan]),
        "clinic_id": clinic_ids.gather(plan["clinic"][ver_plan]),
        "start_date": start_date.gather(ver_plan),
        "planned_weeks": _nullable_int(plan["given_weeks"][ver_plan], plan["given_weeks"][ver_plan] > 0),
        "planned_sessions": _nullable_int(plan["planned_sessions"][ver_plan], plan["planned_sessions"][ver_plan] > 0),
        "pcp_cleared": pcp.gather(ver_plan),
        "status": _lookup(("active", "discharged", "cancelled"), ver_status),
        "updated_at": _format_ts(ver_local, ver_zone, _ts_styles(rng, len(ver_plan))),
        "_drop": ver_local // DAY - first_day,
        "_order": _local_to_utc(ver_local, ver_zone),
    })
    counts["plan_status_changes"] = int(changes.sum())

    # ---- sessions: sent the night they happen; some corrected, re-sent, or re-sent stale
    n = len(s["patient"])
    session_ids = _ids("SES-", np.arange(n) + 1, 7)
    clinician_ids = _ids("CLN-", np.arange(len(world.clinician_role)) + 1, 4)
    therapy_text = _therapy_text(s["therapy_bits"])
    condition = np.where(rng.random(n) < 0.02, -1, plan["condition"][s["plan"]])
    updated_local = s["local"] + (s["duration_min"] + rng.integers(0, 31, n)) * 60
    completed = s["completed"]
    correct_day = s["day"] + rng.integers(1, 3, n)
    can_correct = completed & (correct_day <= last_drop)
    fix_pain = can_correct & (rng.random(n) < RATES["pain_after_corrected"]) & (pain["pain_after"] >= 0)
    late_ae = can_correct & (pain["adverse"] > 0) & (rng.random(n) < RATES["adverse_event_reported_late"])
    corrected = fix_pain | late_ae
    wrong_after = np.where(pain["pain_after"] >= 5, pain["pain_after"] - 1, pain["pain_after"] + 1)
    stale = corrected & (rng.random(n) < RATES["stale_resend"]) & (correct_day + 1 <= last_drop)
    identical = ~corrected & (rng.random(n) < RATES["identical_resend"]) & (s["day"] + 1 <= last_drop)

    pb_valid = (pain["pain_before"] >= 0) & ~(completed & (rng.random(n) < 0.02))
    pa_valid = (pain["pain_after"] >= 0) & ~(completed & (rng.random(n) < 0.03))

    def session_version(idx, after_values, adverse_values, upd_local, drop):
        return pl.DataFrame({
            "session_id": session_ids.gather(idx),
            "patient_id": mrn_text.gather(s["patient"][idx]),
            "plan_id": plan_ids.gather(s["plan"][idx]),
            "clinic_id": clinic_ids.gather(s["clinic"][idx]),
            "clinician_id": clinician_ids.gather(s["clinician"][idx]),
            "clinician_role": _lookup(ROLES, world.clinician_role[s["clinician"][idx]]),
            "started_at": _format_ts(s["local"][idx], s["zone"][idx], started_styles[idx]),
            "status": _lookup(("completed", "cancelled", "no_show"), s["status"][idx]),
            "therapies": therapy_text.gather(idx),
            "condition": _lookup(CONDITIONS, condition[idx]),
            "pain_before": _nullable_int(pain["pain_before"][idx], pb_valid[idx]),
            "pain_after": _nullable_int(after_values, pa_valid[idx] & (after_values >= 0)),
            "aftercare": _lookup(AFTERCARE, pain["aftercare"][idx]),
            "adverse_event": _lookup(ADVERSE, adverse_values),
            "updated_at": _format_ts(upd_local, s["zone"][idx], _ts_styles(rng, len(idx))),
            "_drop": drop,
            "_order": _local_to_utc(upd_local, s["zone"][idx]),
        })

    started_styles = _ts_styles(rng, n)
    all_idx = np.arange(n)
    first_after = np.where(fix_pain, wrong_after, pain["pain_after"])
    first_adverse = np.where(late_ae, 0, pain["adverse"])
    first = session_version(all_idx, first_after, first_adverse, updated_local, s["day"])
    ci = np.flatnonzero(corrected)
    corr_local = (first_day + correct_day[ci]) * DAY + rng.integers(8 * 3600, 18 * 3600, len(ci))
    correction = session_version(ci, pain["pain_after"][ci], pain["adverse"][ci], corr_local, correct_day[ci])
    si = np.flatnonzero(stale)
    stale_frame = first[si].with_columns(_drop=pl.Series(correct_day[si] + 1))
    ii = np.flatnonzero(identical)
    identical_frame = first[ii].with_columns(_drop=pl.Series(s["day"][ii] + 1))
    sessions = pl.concat([first, correction, stale_frame, identical_frame])
    counts.update({
        "sessions_pain_after_corrected": int(fix_pain.sum()),
        "sessions_adverse_event_reported_late": int(late_ae.sum()),
        "sessions_corrected": int(corrected.sum()),
        "sessions_stale_version_resent": int(stale.sum()),
        "sessions_resent_unchanged": int(identical.sum()),
    })

    # ---- needle sites: sent with their session; a few session's lists re-sent whole, corrected
    row = sites["session_row"]
    resend_session = (rng.random(n) < RATES["sites_resent"]) & s["needling"] & (s["day"] + 2 <= last_drop)
    resend_day = s["day"] + rng.integers(1, 3, n)
    rs = resend_session[row]
    # The first list of such a session carries one spot too many (from the other pool) and other needle counts.
    extra_rows = np.flatnonzero(rs & (sites["j"] == 0))
    extra_spot = plan["spot_order"][sites["plan"][extra_rows], (1 - sites["parity"][extra_rows]) * 4 + 3]
    extra_cond = plan["condition"][sites["plan"][extra_rows]]
    extra_code = extra_cond * 8 + extra_spot

    def site_frame(rows, code, needles, drop):
        return pl.DataFrame({
            "session_id": session_ids.gather(row[rows]),
            "site": _lookup(SITE_TABLE, code),
            "side": _lookup(SIDE_TABLE, code),
            "needles": _nullable_int(needles, rng.random(len(rows)) >= 0.02),
            "_drop": drop,
            "_order": s["instant"][row[rows]],
        })

    all_rows = np.arange(len(row))
    first_needles = np.where(rs, np.clip(sites["needles"] + 1, 1, 6), sites["needles"])
    first_sites = site_frame(all_rows, sites["spot_code"], first_needles, s["day"][row])
    extras = site_frame(extra_rows, extra_code, np.ones(len(extra_rows), dtype=np.int64), s["day"][row[extra_rows]])
    rr = np.flatnonzero(rs)
    resent = site_frame(rr, sites["spot_code"][rr], sites["needles"][rr], resend_day[row[rr]])
    needle_sites = pl.concat([first_sites, extras, resent])
    counts["needle_site_lists_resent"] = int(resend_session.sum())
    # The final site rows are the true ones; the needles column of the final rows uses site_frame's own nulls.

    # ---- check-ins: sent the night they are recorded, a few a night late, a few re-sent
    k = len(chk["patient"])
    checkin_ids = _ids("CHK-", np.arange(k) + 1, 7)
    day = chk["local"] // DAY - first_day
    drop = np.minimum(day + (rng.random(k) < RATES["checkin_late"]), last_drop)
    again = (rng.random(k) < RATES["checkin_resent"]) & (drop + 1 <= last_drop)
    checkins = pl.DataFrame({
        "checkin_id": checkin_ids,
        "patient_id": mrn_text.gather(chk["patient"]),
        "recorded_at": _format_ts(chk["local"], chk["zone"], _ts_styles(rng, k)),
        "pain": pl.Series(chk["pain"].astype(np.int64)),
        "channel": _lookup(CHANNELS, chk["channel"]),
        "_drop": drop,
        "_order": chk["instant"],
    })
    ai = np.flatnonzero(again)
    checkins = pl.concat([checkins, checkins[ai].with_columns(_drop=pl.Series(drop[ai] + rng.integers(1, 3, len(ai))).clip(upper_bound=last_drop))])
    counts["checkins_resent"] = int(again.sum())
    counts["checkins_exported_late"] = int((drop > day).sum())

    frames = {"sessions": sessions, "needle_sites": needle_sites, "plans": plans, "pain_checkins": checkins, "patients": patients}
    return frames, counts, final_status


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


def main_summary_lines(summary: GenerationSummary) -> list[str]:
    """What `clinic-outcomes generate` prints."""
    p = summary.planted
    formats = ", ".join(f"{count} {fmt}" for fmt, count in summary.files.items())
    lines = [
        f"synthetic export in {summary.out} (seed {summary.seed}{', dirty' if summary.dirty else ''})",
        f"  {summary.drops} drops {summary.first_date} .. {summary.end_date}: {formats} files",
        f"  settings (clinic time zones): {summary.settings_path}",
        f"  {summary.clinics} clinics, {summary.clinicians} clinicians, {summary.patients} patients, {summary.plans} plans",
        f"  {summary.sessions} sessions ({p['sessions_completed']} completed, {p['needling_sessions']} with dry needling), "
        f"{summary.needle_sites} needle sites, {summary.pain_checkins} pain check-ins",
        f"  planted: {p['retreatment_sessions_under_72h']} re-treatments < 72 h ({p['retreatment_flags_under_72h']} spot flags), "
        f"{p['spot_pairs_exactly_72h']} spots again at exactly 72 h; {p['plans_abandoned']} abandoned, "
        f"{p['plans_discharged_early']} discharged early, {p['plans_cancelled']} cancelled, "
        f"{p['plans_in_progress_at_as_of']} in progress at {summary.end_date + dt.timedelta(days=1)}",
        f"  run it with: --exports {summary.out} --config {summary.settings_path} --as-of {summary.end_date + dt.timedelta(days=1)}",
    ]
    if summary.dirty:
        lines.append(
            f"  dirty: {len(summary.malformed_rows)} malformed rows, "
            + ", ".join(f"{f.kind} {f.path}" for f in summary.malformed_files)
        )
    return lines
