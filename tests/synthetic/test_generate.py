"""The synthetic export generator (clinic_outcomes.synthetic): layout, validity, determinism,
planted phenomena and dirty mode, all checked by reading the files it wrote back in.

The checks here are independent of the loader: a small reader and validator written
from docs/exports.md, and the rules' definitions redone in a few lines of SQL.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import re
import zlib
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow as pa
import pytest

from clinic_outcomes.synthetic.generate import generate, main_summary_lines
from clinic_outcomes.synthetic.network import CLINIC_NAMES, CLINICS, DEFAULT_END_DATE, GenerationSummary, clinic_table
from clinic_outcomes.settings import load_settings
from clinic_outcomes.warehouse import connect

# --------------------------------------------------------------------------- the contract, restated

ROLES = {"physical_therapist", "chiropractor", "acupuncturist", "nurse", "physician", "other"}
THERAPIES = {"dry_needling", "manual_therapy", "therapeutic_exercise", "electrical_stimulation", "ultrasound", "heat_ice", "spinal_injection", "other"}
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})?$")
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")

# column: (type, required, argument)
SPEC: dict[str, dict[str, tuple[str, bool, object]]] = {
    "sessions": {
        "session_id": ("text", True, None),
        "patient_id": ("text", True, None),
        "plan_id": ("text", False, None),
        "clinic_id": ("text", True, None),
        "clinician_id": ("text", True, None),
        "clinician_role": ("enum", True, ROLES),
        "started_at": ("ts", True, None),
        "status": ("enum", True, {"completed", "cancelled", "no_show"}),
        "therapies": ("list", True, THERAPIES),
        "condition": ("enum", False, {"low_back_pain", "neck_pain", "cervicogenic_headache", "carpal_tunnel_syndrome", "shoulder_pain", "other"}),
        "pain_before": ("int", False, (0, 10)),
        "pain_after": ("int", False, (0, 10)),
        "aftercare": ("enum", False, {"ice", "heat", "none"}),
        "adverse_event": ("enum", False, {"none", "soreness", "bruising", "swelling", "bleeding", "fainting", "other"}),
        "updated_at": ("ts", True, None),
    },
    "needle_sites": {
        "session_id": ("text", True, None),
        "site": ("site", True, None),
        "side": ("enum", True, {"left", "right", "midline"}),
        "needles": ("int", False, (1, None)),
    },
    "plans": {
        "plan_id": ("text", True, None),
        "patient_id": ("text", True, None),
        "clinic_id": ("text", True, None),
        "start_date": ("date", True, None),
        "planned_weeks": ("int", False, (1, 52)),
        "planned_sessions": ("int", False, (1, None)),
        "pcp_cleared": ("bool", False, None),
        "chronicity": ("enum", False, {"acute", "subacute", "chronic"}),
        "status": ("enum", True, {"active", "discharged", "cancelled"}),
        "updated_at": ("ts", True, None),
    },
    "pain_checkins": {
        "checkin_id": ("text", True, None),
        "patient_id": ("text", True, None),
        "recorded_at": ("ts", True, None),
        "pain": ("int", True, (0, 10)),
        "channel": ("enum", False, {"sms", "app", "phone"}),
    },
    "patients": {
        "patient_id": ("text", True, None),
        "full_name": ("text", False, None),
        "date_of_birth": ("date", False, None),
        "sex": ("enum", False, {"female", "male", "other", "unknown"}),
        "phone": ("text", False, None),
        "postal_code": ("text", False, None),
        "updated_at": ("ts", True, None),
    },
}


def problem(kind: str, required: bool, arg, value: str | None) -> str | None:
    """Why a field breaks the contract, or None when it is fine."""
    if value is None or value == "":
        return "missing" if required else None
    try:
        if kind == "int":
            number = int(value)
            low, high = arg
            return None if number >= low and (high is None or number <= high) else "out of range"
        if kind == "bool":
            return None if value.lower() in {"true", "false", "yes", "no", "1", "0"} else "bad bool"
        if kind == "enum":
            return None if value.lower() in arg else "unknown enum"
        if kind == "list":
            items = value.split(";")
            return None if items and all(item.lower() in arg for item in items) else "unknown list item"
        if kind == "ts":
            dt.datetime.fromisoformat(value)
            return None if TS.match(value) else "not ISO"
        if kind == "date":
            dt.date.fromisoformat(value)
            return None if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) else "not a date"
        if kind == "site":
            return None if SNAKE.match(value) else "not snake case"
    except ValueError:
        return "does not parse"
    return None


def row_problems(entity: str, header: list[str], row: list[str | None]) -> list[str]:
    if len(row) != len(header):
        return ["field count"]
    record = dict(zip(header, row))
    out = []
    for column, (kind, required, arg) in SPEC[entity].items():
        if column not in record:
            if required:
                out.append(f"{column}: column missing")
            continue
        why = problem(kind, required, arg, record[column])
        if why:
            out.append(f"{column}: {why}")
    return out


# --------------------------------------------------------------------------- reading the files back


def raw_text(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def read_export(path: Path) -> tuple[list[str], list[list[str | None]]]:
    """(normalised header, rows as text) of one export file; parquet values as their CSV text."""
    if path.suffix == ".parquet":
        frame = pl.read_parquet(path)
        columns = []
        for name, dtype in frame.schema.items():
            col = pl.col(name)
            if dtype == pl.Boolean:
                col = pl.when(col).then(pl.lit("true")).when(~col).then(pl.lit("false"))
            elif dtype == pl.Date:
                col = col.dt.strftime("%Y-%m-%d")
            columns.append(col.cast(pl.String).alias(name))
        frame = frame.select(columns)
        return [c.strip().lower() for c in frame.columns], [list(r) for r in frame.iter_rows()]
    text = raw_text(path).decode("utf-8-sig")
    lines = list(csv.reader(io.StringIO(text, newline="")))
    header = [c.strip().lower() for c in lines[0]]
    return header, [[v if v != "" else None for v in r] for r in lines[1:]]


def entity_files(out: Path) -> list[tuple[str, str, Path]]:
    """(drop, entity, path) of every export file, in drop order."""
    found = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir()):
            entity = path.name.split(".")[0]
            if entity in SPEC:
                found.append((folder.name, entity, path))
    return found


def as_duckdb(out: Path, zones: dict[str, str] | None = None):
    """All versions of every record as text, plus drop, in DuckDB tables named after the entities; `zones`:
    clinic -> IANA zone (default: CLINICS')."""
    zones = zones or {c: z for c, z, _ in CLINICS}
    con = connect()
    rows: dict[str, list[dict]] = {e: [] for e in SPEC}
    for drop, entity, path in entity_files(out):
        header, data = read_export(path)
        for row in data:
            record = {c: None for c in SPEC[entity]}
            record.update({h: v for h, v in zip(header, row) if h in SPEC[entity]})
            record["_drop"] = drop
            rows[entity].append(record)
    con.register("zones_arrow", pa.table({"clinic_id": list(zones), "zone": list(zones.values())}))
    con.execute("create table zones as select * from zones_arrow")
    for entity, records in rows.items():
        columns = list(SPEC[entity]) + ["_drop"]
        table = pa.table({c: pa.array([r[c] for r in records], type=pa.string()) for c in columns})
        con.register(f"{entity}_arrow", table)
        con.execute(f"create table {entity} as select * from {entity}_arrow")
    con.execute(
        """
        create macro instant(ts, zone) as
            case when regexp_matches(ts, '(Z|[+-]\\d\\d:\\d\\d)$') then cast(ts as timestamptz)
                 else timezone(zone, cast(ts as timestamp)) end
        """
    )
    # The latest version of each record, as exports.md defines it.
    con.execute(
        """
        create table final_sessions as
        with versions as (
            select s.*, lower(s.status) as state, instant(s.updated_at, z.zone) as updated_instant,
                   instant(s.started_at, z.zone) as started_instant, z.zone,
            from sessions as s join zones as z using (clinic_id)
        )
        select * from versions
        qualify row_number() over (partition by session_id order by updated_instant desc, _drop desc) = 1
        """
    )
    con.execute(
        """
        create table final_sites as
        select * from needle_sites
        qualify _drop = max(_drop) over (partition by session_id)
        """
    )
    con.execute(
        """
        create table final_plans as
        with versions as (
            select p.*, instant(p.updated_at, z.zone) as updated_instant, z.zone,
            from plans as p join zones as z using (clinic_id)
        )
        select * from versions
        qualify row_number() over (partition by plan_id order by updated_instant desc, _drop desc) = 1
        """
    )
    return con


# --------------------------------------------------------------------------- fixtures

END = dt.date(2026, 11, 23)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> GenerationSummary:
    return generate(tmp_path_factory.mktemp("clean"), patients=400, days=90, seed=11)


@pytest.fixture(scope="module")
def clean_db(clean):
    con = as_duckdb(clean.out)
    yield con
    con.close()


@pytest.fixture(scope="module")
def dirty(tmp_path_factory) -> GenerationSummary:
    return generate(tmp_path_factory.mktemp("dirty"), patients=400, days=90, seed=11, dirty=True)


def scalar(con, query: str):
    return con.execute(query).fetchone()[0]


# --------------------------------------------------------------------------- layout and formats


def test_one_drop_folder_per_day_up_to_the_fixed_end_date(clean):
    folders = sorted(p.name for p in clean.out.iterdir() if p.is_dir())
    first = END - dt.timedelta(days=89)
    assert folders == [(first + dt.timedelta(days=d)).isoformat() for d in range(90)]
    assert clean.end_date == DEFAULT_END_DATE == END and clean.drops == 90


def test_settings_name_every_clinic_zone_in_the_settings_format(clean):
    settings = load_settings(clean.settings_path)
    assert clean.settings_path == clean.out / "settings.toml"
    assert settings.clinic_timezones == {clinic: zone for clinic, zone, _ in CLINICS}
    assert {"America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"} <= set(settings.clinic_timezones.values())


def test_only_entity_files_with_every_accepted_format(clean):
    names = [p.name for folder in clean.out.iterdir() if folder.is_dir() for p in folder.iterdir()]
    assert all(re.fullmatch(r"(sessions|needle_sites|plans|pain_checkins|patients)\.(csv|csv\.gz|parquet)", n) for n in names)
    formats = {n.split(".", 1)[1] for n in names}
    assert formats == {"csv", "csv.gz", "parquet"}
    assert sum(clean.files.values()) == len(names)
    assert all(clean.files[f] > 0 for f in ("csv", "csv.gz", "parquet"))


def test_the_clean_output_uses_every_variation_the_dialect_allows(clean):
    seen = {"bom": 0, "crlf": 0, "lf": 0, "quoted": 0, "upper_header": 0, "padded_header": 0, "title_enum": 0, "bool_styles": set()}
    for _, entity, path in entity_files(clean.out):
        if path.suffix == ".parquet":
            continue
        data = raw_text(path)
        first_line = data.split(b"\n", 1)[0]
        seen["bom"] += data.startswith(b"\xef\xbb\xbf")
        seen["crlf" if first_line.endswith(b"\r") else "lf"] += 1
        seen["quoted"] += data.count(b'"') > 0
        seen["upper_header"] += first_line.lstrip(b"\xef\xbb\xbf").startswith(first_line.lstrip(b"\xef\xbb\xbf").upper()[:5])
        seen["padded_header"] += b" ," in first_line or first_line.startswith(b" ")
        header, rows = read_export(path)
        if entity == "plans" and "pcp_cleared" in header:
            seen["bool_styles"] |= {r[header.index("pcp_cleared")] for r in rows} - {None}
        if "status" in header:
            seen["title_enum"] += any(r[header.index("status")] in ("Completed", "Active", "Discharged") for r in rows)
    assert seen["bom"] and seen["crlf"] and seen["lf"] and seen["quoted"] and seen["upper_header"] and seen["padded_header"] and seen["title_enum"]
    assert len({v.lower() for v in seen["bool_styles"]} & {"true", "yes", "1"}) >= 2


def test_every_row_of_the_clean_output_is_valid(clean):
    for _, entity, path in entity_files(clean.out):
        header, rows = read_export(path)
        # plans of the older export version lack chronicity (exports.md: optional; older exports lack it)
        absent_allowed = {"chronicity"} if entity == "plans" else set()
        assert set(SPEC[entity]) - absent_allowed <= set(header) <= set(SPEC[entity]), path
        for number, row in enumerate(rows, start=2):
            assert row_problems(entity, header, row) == [], (path, number)
        # no field spans lines, so a physical line is a row (line numbers in rejections mean one thing)
        assert all("\n" not in (v or "") and "\r" not in (v or "") for row in rows for v in row)


def test_rows_written_add_up(clean):
    counted = {e: 0 for e in SPEC}
    for _, entity, path in entity_files(clean.out):
        counted[entity] += len(read_export(path)[1])
    assert counted == clean.rows_written


def test_final_records_match_the_summary(clean, clean_db):
    con = clean_db
    assert scalar(con, "select count(*) from final_sessions") == clean.sessions
    assert scalar(con, "select count(*) from final_sites") == clean.needle_sites
    assert scalar(con, "select count(*) from final_plans") == clean.plans
    assert scalar(con, "select count(distinct checkin_id) from pain_checkins") == clean.pain_checkins
    assert scalar(con, "select count(distinct patient_id) from patients") == clean.patients


def test_timestamps_come_naive_with_offsets_and_in_utc_across_a_dst_change(clean_db):
    forms = dict(clean_db.execute(
        """
        select case when started_at like '%Z' then 'z' when regexp_matches(started_at, '[+-]\\d\\d:\\d\\d$') then 'offset' else 'naive' end as form,
               count(*),
        from sessions group by all
        """
    ).fetchall())
    assert forms["naive"] > 0.7 * sum(forms.values()) and forms["offset"] > 0 and forms["z"] > 0
    ny_offsets = {r[0] for r in clean_db.execute(
        "select distinct right(started_at, 6) from sessions where clinic_id in ('clinic_nyc', 'clinic_bos') and regexp_matches(started_at, '[+-]\\d\\d:\\d\\d$')"
    ).fetchall()}
    assert ny_offsets == {"-04:00", "-05:00"}  # the drops span the end of daylight-saving time


def test_no_direct_identifier_outside_the_patient_columns(clean):
    """Names, phones and postal codes are fake and live only in patients files."""
    names = set()
    for _, entity, path in entity_files(clean.out):
        if entity == "patients":
            header, rows = read_export(path)
            names |= {r[header.index("full_name")] for r in rows} - {None}
            phones = {r[header.index("phone")] for r in rows} - {None}
            assert all(re.fullmatch(r"555-01\d\d", p) for p in phones)
            postal = {r[header.index("postal_code")] for r in rows} - {None}
            assert all(p.startswith("000") for p in postal)
    assert any("," in n for n in names) and any('"' in n for n in names)


# --------------------------------------------------------------------------- determinism


def digest(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path):
    first = generate(tmp_path / "a", patients=60, days=30, seed=3)
    second = generate(tmp_path / "b", patients=60, days=30, seed=3)
    other = generate(tmp_path / "c", patients=60, days=30, seed=4)
    assert digest(first.out) == digest(second.out)
    assert first.planted == second.planted
    assert any(p.endswith(".parquet") for p in digest(first.out)) and any(p.endswith(".gz") for p in digest(first.out))
    assert digest(first.out) != digest(other.out)


def test_regenerating_into_the_same_folder_replaces_the_drops(tmp_path):
    generate(tmp_path, patients=30, days=20, seed=1, end_date=dt.date(2026, 3, 1))
    again = generate(tmp_path, patients=30, days=10, seed=1, end_date=dt.date(2026, 3, 1))
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == again.drops == 10


# --------------------------------------------------------------------------- planted phenomena, recomputed from the files


def test_retreatments_under_72_hours_are_exactly_the_planted_ones(clean, clean_db):
    flags, sessions, exactly = clean_db.execute(
        """
        with needled as (
            select s.session_id, s.patient_id, s.started_instant, site.site, lower(site.side) as side,
            from final_sessions as s
            join final_sites as site using (session_id)
            where s.state = 'completed' and list_contains(string_split(lower(s.therapies), ';'), 'dry_needling')
        ),
        paired as (
            select *,
                started_instant - lag(started_instant) over (
                    partition by patient_id, site, side order by started_instant, session_id
                ) as since_previous,
            from needled
        )
        select count(*) filter (where since_previous < interval 72 hours),
               count(distinct session_id) filter (where since_previous < interval 72 hours),
               count(*) filter (where since_previous = interval 72 hours),
        from paired
        """
    ).fetchone()
    p = clean.planted
    assert (flags, sessions, exactly) == (p["retreatment_flags_under_72h"], p["retreatment_sessions_under_72h"], p["spot_pairs_exactly_72h"])
    assert flags > 0 and exactly > 0
    # the documented rate: 30% of needling sessions that come under 72 h after the previous one
    assert 0.2 < sessions / p["needling_sessions_within_72h_of_previous"] < 0.4


def test_session_status_therapy_and_safety_rates(clean, clean_db):
    rates = dict(zip(
        ["sessions", "cancelled", "no_show", "needling", "soreness", "bruising", "rare", "ice", "heat", "none"],
        clean_db.execute(
            """
            with s as (
                select *, lower(adverse_event) as ae, lower(aftercare) as care,
                       state = 'completed' and contains(lower(therapies), 'dry_needling') as needling,
                from final_sessions
            )
            select count(*),
                   count(*) filter (where state = 'cancelled'),
                   count(*) filter (where state = 'no_show'),
                   count(*) filter (where needling),
                   count(*) filter (where needling and ae = 'soreness'),
                   count(*) filter (where needling and ae = 'bruising'),
                   count(*) filter (where needling and ae in ('swelling', 'bleeding', 'fainting')),
                   count(*) filter (where needling and care = 'ice'),
                   count(*) filter (where needling and care = 'heat'),
                   count(*) filter (where needling and care = 'none'),
            from s
            """
        ).fetchone(),
    ))
    n, needling = rates["sessions"], rates["needling"]
    assert rates["cancelled"] == clean.planted["sessions_cancelled"] and 0.04 < rates["cancelled"] / n < 0.10
    assert rates["no_show"] == clean.planted["sessions_no_show"] and 0.03 < rates["no_show"] / n < 0.08
    assert needling == clean.planted["needling_sessions"]
    assert 0.11 < rates["soreness"] / needling < 0.19
    assert 0.03 < rates["bruising"] / needling < 0.08
    assert 0.01 < rates["rare"] / needling < 0.05
    assert rates["soreness"] == clean.planted["adverse_soreness"]  # late reports were corrected in later drops
    assert rates["ice"] > rates["heat"] > rates["none"] > 0


def test_plan_archetypes(clean, clean_db):
    con = clean_db
    plans = clean.plans
    p = clean.planted
    assert 0.08 < p["plans_abandoned"] / plans < 0.17
    assert 0.03 < p["plans_discharged_early"] / plans < 0.12
    assert scalar(con, "select count(*) from final_plans where lower(status) = 'cancelled'") == p["plans_cancelled"] > 0
    assert scalar(con, "select count(*) from final_plans where pcp_cleared is not null and lower(pcp_cleared) in ('false', 'no', '0')") == p["plans_without_pcp_clearance"]
    assert scalar(con, "select count(*) from final_plans where planned_weeks is not null") == p["plans_with_own_planned_weeks"]
    assert scalar(con, "select count(*) from final_plans where planned_weeks is not null and planned_weeks <> '6'") > 0
    assert scalar(con, "select count(*) from final_plans where planned_sessions is not null") == p["plans_with_planned_sessions"] > 0

    # From the files: evaluated plans (window over by the as-of date, not cancelled) without a final-week session.
    evaluated, no_final_week, no_needling, no_adjunct, in_progress = con.execute(
        """
        with plan as (
            select plan_id, lower(status) as status, zone,
                   cast(start_date as date) as start_date, coalesce(cast(planned_weeks as int), 6) as weeks,
            from final_plans
        ),
        in_window as (
            select p.plan_id, p.start_date, p.weeks, s.therapies,
                   cast(timezone(p.zone, s.started_instant) as date) - p.start_date as day,
            from plan as p join final_sessions as s using (plan_id)
            where s.state = 'completed'
        ),
        per_plan as (
            select p.plan_id, p.status,
                   p.start_date + 7 * p.weeks > date '2026-11-24' as window_open,
                   count(w.day) filter (where w.day between 7 * (p.weeks - 1) and 7 * p.weeks - 1) as final_week,
                   count(w.day) filter (where contains(lower(w.therapies), 'dry_needling')) as needling,
                   count(w.day) filter (where lower(w.therapies) <> 'dry_needling') as adjunct,
            from plan as p left join in_window as w on w.plan_id = p.plan_id and w.day between 0 and 7 * p.weeks - 1
            group by all
        )
        select count(*) filter (where evaluated),
               count(*) filter (where evaluated and final_week = 0),
               count(*) filter (where evaluated and needling = 0),
               count(*) filter (where evaluated and adjunct = 0),
               count(*) filter (where status = 'active' and window_open),
        from (select *, status <> 'cancelled' and (status = 'discharged' or not window_open) as evaluated from per_plan)
        """
    ).fetchone()
    assert in_progress == p["plans_in_progress_at_as_of"] > 0
    assert evaluated > 0.5 * plans
    assert 0.12 < no_final_week / evaluated < 0.40
    assert 0.01 < no_needling / evaluated < 0.08
    assert 0.05 < no_adjunct / evaluated < 0.20


def test_relief_is_meaningful_often_and_lasts_longest_with_heat(clean, clean_db):
    con = clean_db
    meaningful, with_pain = con.execute(
        """
        select count(*) filter (where cast(pain_before as int) - cast(pain_after as int) >= 2), count(*),
        from final_sessions
        where state = 'completed' and contains(lower(therapies), 'dry_needling') and pain_before is not null and pain_after is not null
        """
    ).fetchone()
    assert 0.4 < meaningful / with_pain < 0.8
    # R4 in a few lines: relapse is the first later observation above pain_before - 2, within 42 days
    # and up to the next needling session. Share of meaningful episodes relapsed within 72 hours:
    relapsed_72h = dict(con.execute(
        """
        with needling as (
            select session_id, patient_id, started_instant, lower(aftercare) as care, cast(pain_before as int) as before,
                   lead(started_instant) over (partition by patient_id order by started_instant) as next_needling,
                   cast(pain_before as int) - cast(pain_after as int) >= 2 as meaningful,
            from final_sessions
            where state = 'completed' and contains(lower(therapies), 'dry_needling')
        ),
        checkins as (
            select c.patient_id, instant(c.recorded_at, z.zone) as observed_at, cast(c.pain as int) as pain,
            from (select * from pain_checkins qualify row_number() over (partition by checkin_id order by _drop desc) = 1) as c
            join (select distinct patient_id, clinic_id from final_plans) as p using (patient_id)
            join zones as z using (clinic_id)
        ),
        observations as (
            select patient_id, observed_at, pain from checkins
            union all
            select patient_id, started_instant, cast(pain_before as int) from final_sessions
            where state = 'completed' and pain_before is not null
        ),
        relapse as (
            select e.session_id, min(o.observed_at) - e.started_instant as took,
            from needling as e join observations as o
              on o.patient_id = e.patient_id and o.observed_at > e.started_instant
             and o.observed_at <= least(coalesce(e.next_needling, e.started_instant + interval 42 days), e.started_instant + interval 42 days)
             and o.pain > e.before - 2
            group by e.session_id, e.started_instant
        )
        select e.care, count(*) filter (where r.took < interval 72 hours) / count(*),
        from needling as e left join relapse as r using (session_id)
        where e.meaningful and e.care is not null
        group by all
        """
    ).fetchall())
    # planted medians: heat 132 h, ice 90 h, none 54 h
    assert relapsed_72h["none"] > relapsed_72h["ice"] + 0.05 > relapsed_72h["heat"] + 0.05 > 0.05


def test_records_come_again_in_later_drops(clean, clean_db):
    con = clean_db
    p = clean.planted
    # corrected sessions: a later version with a later updated_at
    assert scalar(con, "select count(*) from (select session_id from sessions group by all having count(distinct updated_at) > 1)") == p["sessions_corrected"] > 0
    # a stale version re-sent after its correction: older updated_at in a later drop
    stale = scalar(con, """
        with v as (select session_id, _drop, instant(updated_at, z.zone) as u from sessions join zones as z using (clinic_id))
        select count(distinct a.session_id) from v as a join v as b using (session_id)
        where a._drop > b._drop and a.u < b.u
    """)
    assert stale == p["sessions_stale_version_resent"] > 0
    # site lists re-sent whole: the later drop's list differs from the earlier one
    assert scalar(con, "select count(*) from (select session_id from needle_sites group by all having count(distinct _drop) > 1)") == p["needle_site_lists_resent"] > 0
    assert scalar(con, "select count(*) from (select checkin_id from pain_checkins group by all having count(*) > 1)") == p["checkins_resent"] > 0
    assert scalar(con, "select count(*) from (select plan_id from plans group by all having count(distinct lower(status)) > 1)") == p["plan_status_changes"] > 0


# --------------------------------------------------------------------------- dirty mode


def test_dirty_mode_plants_exactly_the_recorded_rows(dirty):
    kinds = {r.kind for r in dirty.malformed_rows}
    assert kinds == {"missing_required", "bad_timestamp", "out_of_range", "unknown_enum", "bad_bool", "too_many_columns"}
    by_file: dict[str, set[int]] = {}
    for r in dirty.malformed_rows:
        by_file.setdefault(r.path, set()).add(r.line)
    rejected_files = {f.path for f in dirty.malformed_files if f.kind in ("missing_column", "garbled_gzip")}
    for drop, entity, path in entity_files(dirty.out):
        relpath = f"{drop}/{path.name}"
        if relpath in rejected_files:
            continue
        header, rows = read_export(path)
        known = [i for i, h in enumerate(header) if h in SPEC[entity]]  # the unknown column is ignored
        planted = by_file.get(relpath, set())
        for line, row in enumerate(rows, start=2):
            fields = [row[i] for i in known] + row[len(header):]
            invalid = bool(row_problems(entity, [header[i] for i in known], fields))
            assert invalid == (line in planted), (relpath, line, row)
    for r in dirty.malformed_rows:
        header, rows = read_export(dirty.out / r.path)
        row = rows[r.line - 2]
        if r.kind == "too_many_columns":
            assert len(row) == len(header) + 1
        else:
            assert row[header.index(r.column)] == r.value


def test_dirty_mode_malformed_files(dirty, clean):
    files = {f.kind: f for f in dirty.malformed_files}
    assert set(files) == {"missing_column", "garbled_gzip", "stray_file", "unknown_column"}
    header, rows = read_export(dirty.out / files["missing_column"].path)
    assert files["missing_column"].column not in header and len(rows) == files["missing_column"].rows > 0
    with pytest.raises((OSError, EOFError, zlib.error)):
        gzip.decompress((dirty.out / files["garbled_gzip"].path).read_bytes())
    assert files["garbled_gzip"].path.endswith(".csv.gz") and files["garbled_gzip"].rows > 0
    assert (dirty.out / files["stray_file"].path).name == "notes.txt"
    header, _ = read_export(dirty.out / files["unknown_column"].path)
    assert "room" in header
    # the records themselves are those of the clean run with the same seed
    assert dirty.rows_written == clean.rows_written and dirty.planted == clean.planted


def test_dirty_share_is_small(dirty):
    assert 0.002 < len(dirty.malformed_rows) / sum(dirty.rows_written.values()) < 0.01


# --------------------------------------------------------------------------- summary


def test_summary_lines_name_the_counts_and_how_to_run(clean):
    lines = main_summary_lines(clean)
    text = "\n".join(lines)
    assert str(clean.out) in text and str(clean.settings_path) in text
    assert f"{clean.sessions} sessions" in text and "--as-of 2026-11-24" in text
    assert f"{clean.planted['retreatment_sessions_under_72h']} re-treatments" in text


# --------------------------------------------------------------------------- networks of another size (clinics=N)

FORTY = [f"clinic_{i:03d}" for i in range(1, 41)]


@pytest.fixture(scope="module")
def forty(tmp_path_factory) -> GenerationSummary:
    return generate(tmp_path_factory.mktemp("forty"), patients=600, days=30, seed=5, clinics=40)


def test_the_clinic_table_is_the_seven_by_default_and_n_generated_clinics_otherwise():
    seven = clinic_table()
    assert clinic_table(7) == seven
    assert [(c.id, c.zone, c.share) for c in seven] == list(CLINICS)
    assert [c.name for c in seven] == [CLINIC_NAMES[c] for c, _, _ in CLINICS]
    table = clinic_table(40)
    assert [c.id for c in table] == FORTY and table == clinic_table(40)
    assert table[0].name == "Clinic 001 (New York)" and table[39].name.startswith("Clinic 040 (")
    assert {"Clinic 009 (Tokyo)", "Clinic 011 (Auckland)", "Clinic 005 (Los Angeles)"} <= {c.name for c in table}
    assert len({c.share for c in table}) > 1  # shares differ by clinic
    assert {c.zone for c in seven} <= {c.zone for c in table}
    assert [c.id for c in clinic_table(1)] == ["clinic_001"]
    with pytest.raises(ValueError):
        clinic_table(0)


def test_forty_clinics_in_the_plans_the_sessions_and_the_settings(forty):
    assert forty.clinics == 40
    seen: dict[str, set[str]] = {"plans": set(), "sessions": set()}
    patients: dict[str, set[str]] = {}
    for _, entity, path in entity_files(forty.out):
        if entity not in seen:
            continue
        header, rows = read_export(path)
        clinic, patient = header.index("clinic_id"), header.index("patient_id")
        for row in rows:
            seen[entity].add(row[clinic])
            patients.setdefault(row[clinic], set()).add(row[patient])
    assert sorted(seen["plans"]) == sorted(seen["sessions"]) == FORTY
    assert min(len(p) for p in patients.values()) >= 1  # every clinic has patients (the fewest: 1 in 80 of them)
    settings = load_settings(forty.settings_path)
    assert sorted(settings.clinic_timezones) == FORTY
    assert {settings.clinic_name(c) for c in FORTY} == {c.name for c in clinic_table(40)}
    for zone in settings.clinic_timezones.values():
        ZoneInfo(zone)  # a real IANA zone
    assert {"Europe/Berlin", "Asia/Tokyo", "Pacific/Auckland", "America/Phoenix"} <= set(settings.clinic_timezones.values())


def test_every_row_of_a_forty_clinic_network_is_valid_and_its_timestamps_are_clinic_hours(forty):
    for _, entity, path in entity_files(forty.out):
        header, rows = read_export(path)
        problems = [p for row in rows for p in row_problems(entity, header, row)]
        assert problems == [], (path, problems[:5])
    con = as_duckdb(forty.out, load_settings(forty.settings_path).clinic_timezones)
    try:
        # Naive, offset and Z forms alike name an instant that is 07:00-19:00 in the clinic's own zone,
        # east of UTC too (Tokyo +09:00, Auckland +13:00).
        hours = con.execute("select min(hour(timezone(zone, started_instant))), max(hour(timezone(zone, started_instant))) "
                            "from final_sessions").fetchone()
        assert hours[0] >= 7 and hours[1] <= 19
        offsets = {r[0] for r in con.execute("select distinct regexp_extract(started_at, '([+-]\\d\\d:\\d\\d)$') from sessions").fetchall()}
        assert {"+09:00", "+13:00"} <= offsets
    finally:
        con.close()


def test_forty_clinics_same_seed_same_bytes(tmp_path):
    first = generate(tmp_path / "a", patients=80, days=14, seed=3, clinics=40)
    second = generate(tmp_path / "b", patients=80, days=14, seed=3, clinics=40)
    other = generate(tmp_path / "c", patients=80, days=14, seed=3, clinics=39)
    assert digest(first.out) == digest(second.out) and first.planted == second.planted
    assert digest(first.out) != digest(other.out)


def test_the_default_network_is_clinics_7_byte_for_byte(tmp_path):
    default = generate(tmp_path / "a", patients=60, days=30, seed=3)
    seven = generate(tmp_path / "b", patients=60, days=30, seed=3, clinics=7)
    assert digest(default.out) == digest(seven.out) and default.planted == seven.planted
    assert default.clinics == seven.clinics == len(CLINICS)
