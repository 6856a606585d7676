"""Value sets are kept once, as seeds (sql/seeds/*.csv); every place that uses one agrees with it.

Places: the SQL macros made at prepare time (read by staging and age_band), the staging checks themselves (given
each seed value, expect it loaded; given another value, expect the row rejected), the GX suites' literal lists,
and the Python constants (metrics, synthetic generator). A scan refuses literal copies of a seed in sql/ and src/.

Mutants tried (each made at least one test here fail):
- a value removed from / reordered in a GX suite's value_set (core_sessions adverse_event, plan_completion);
- frames.ADVERSE_EVENT_TYPES keeping 'none'; network.CHANNELS back to a literal in another order;
- age_band's `min_years <= age` turned into `<` (a birthday exactly on a band's lower bound);
- staging's `reason_enum('channel', channel, seed_channels())` given seed_sides() instead;
- load_seed without its duplicate check; a literal list of adverse events put back into sql/loading/staging/sessions.sql.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import duckdb
import pytest

from clinic_outcomes import seeds
from clinic_outcomes.loading import load
from clinic_outcomes.metrics import frames
from clinic_outcomes.settings import Settings
from clinic_outcomes.synthetic import network
from clinic_outcomes.warehouse import EXPECTATIONS_DIR, SQL_DIR, connect
from load_fixtures import AS_OF, checkin, load_all, patient, plan, rejected, session, site, write_drop

ROOT = Path(__file__).resolve().parent.parent

EXPECTED_SEEDS = {
    "adverse_events", "aftercare", "age_bands", "channels", "chronicity", "clinician_roles", "completion_values",
    "conditions", "plan_statuses", "session_statuses", "sexes", "sides", "therapies",
}

# (suite, column) of every GX set expectation over text -> the seed its value_set must equal.
GX_SEEDS = {
    ("core_sessions", "status"): "session_statuses",
    ("core_sessions", "clinician_role"): "clinician_roles",
    ("core_sessions", "condition"): "conditions",
    ("core_sessions", "aftercare"): "aftercare",
    ("core_sessions", "adverse_event"): "adverse_events",
    ("core_session_therapies", "therapy"): "therapies",
    ("core_needle_sites", "side"): "sides",
    ("core_pain_checkins", "channel"): "channels",
    ("core_patients", "sex"): "sexes",
    ("core_plans", "status"): "plan_statuses",
    ("core_plans", "chronicity"): "chronicity",
    ("plan_completion", "completion"): "completion_values",
}

# (entity, column, seed) of every enum column staging checks; (therapies: a list of seed values).
STAGING_ENUMS = [
    ("sessions", "clinician_role", "clinician_roles"),
    ("sessions", "status", "session_statuses"),
    ("sessions", "therapies", "therapies"),
    ("sessions", "condition", "conditions"),
    ("sessions", "aftercare", "aftercare"),
    ("sessions", "adverse_event", "adverse_events"),
    ("needle_sites", "side", "sides"),
    ("pain_checkins", "channel", "channels"),
    ("plans", "status", "plan_statuses"),
    ("plans", "chronicity", "chronicity"),
    ("patients", "sex", "sexes"),
]
ROW_OF = {"sessions": session, "needle_sites": site, "pain_checkins": checkin, "plans": plan, "patients": patient}


@pytest.fixture
def prepared() -> duckdb.DuckDBPyConnection:
    con = connect()
    load.prepare(con, Settings(), AS_OF, run_id=1)
    yield con
    con.close()


# --- the seeds themselves -----------------------------------------------------------------------


def test_every_value_set_is_a_seed():
    assert set(seeds.seed_names()) == EXPECTED_SEEDS
    for name in EXPECTED_SEEDS:
        assert seeds.value_set(name), name


def test_seed_values_as_the_spec_names_them():
    assert seeds.value_set("adverse_events") == ("none", "soreness", "bruising", "swelling", "bleeding", "fainting", "other")
    assert seeds.value_set("chronicity") == ("acute", "subacute", "chronic")
    assert seeds.value_set("completion_values") == ("complete", "discharged_improved", "incomplete", "in_progress", "cancelled")
    assert seeds.seed_column("age_bands", "min_years") == ("0", "18", "30", "40", "50", "60", "70", "80")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("value\nice\nice\n", "appears twice"),
        ("value\nIce\n", "not a lower-case value"),
        ("value\nice'; drop table x; --\n", "not a lower-case value"),
        ("value\n ice\n", "not a lower-case value"),
        ("name\nice\n", "first column must be 'value'"),
        ("value\n", "no values"),
        ("value,min_years\nice\n", "fields"),
    ],
)
def test_a_bad_seed_is_refused(tmp_path, monkeypatch, text, message):
    (tmp_path / "broken.csv").write_text(text, encoding="utf-8")
    monkeypatch.setattr(seeds, "SEEDS_DIR", tmp_path)
    seeds.load_seed.cache_clear()
    try:
        with pytest.raises(seeds.SeedError, match=message):
            seeds.load_seed("broken")
    finally:
        seeds.load_seed.cache_clear()


# --- SQL ----------------------------------------------------------------------------------------


def test_sql_macros_return_each_seed(prepared):
    for name in EXPECTED_SEEDS:
        assert tuple(prepared.sql(f"select seed_{name}()").fetchall()[0][0]) == seeds.value_set(name)
    assert prepared.sql("select seed_age_bands_min_years()").fetchall()[0][0] == [0, 18, 30, 40, 50, 60, 70, 80]


def _band_of(age: int) -> str:
    bands = list(zip(seeds.value_set("age_bands"), map(int, seeds.seed_column("age_bands", "min_years"))))
    return [band for band, lowest in bands if lowest <= age][-1]


def test_age_band_follows_the_seed_at_every_bound(prepared):
    at = dt.date(2026, 11, 23)
    cases = []
    for lowest in map(int, seeds.seed_column("age_bands", "min_years")):
        for age in {max(lowest - 1, 0), lowest}:
            born = at.replace(year=at.year - age)  # the birthday is today: exactly `age` completed years
            cases.append((born, age))
            cases.append((born + dt.timedelta(days=1), age - 1))  # the birthday is tomorrow
    for born, age in cases:
        band = prepared.execute("select age_band($b, $a)", {"b": born, "a": at}).fetchall()[0][0]
        assert band == (_band_of(age) if age >= 0 else None), (born, age)
    assert prepared.execute("select age_band(null::date, $a)", {"a": at}).fetchall()[0][0] is None


@pytest.mark.parametrize(("entity", "column", "seed"), STAGING_ENUMS)
def test_staging_accepts_every_seed_value_and_nothing_else(tmp_path, entity, column, seed):
    """Given one row per seed value (and one outside the seed), expect those loaded and that one rejected."""
    values = seeds.value_set(seed)
    key = {"sessions": "session_id", "plans": "plan_id", "pain_checkins": "checkin_id", "patients": "patient_id",
           "needle_sites": "site"}[entity]
    rows = [ROW_OF[entity](**{key: f"r{i}", column: value.upper()}) for i, value in enumerate(values)]
    rows.append(ROW_OF[entity](**{key: "outside", column: "not_in_the_seed"}))
    write_drop(tmp_path, "2026-11-01", entity, rows)
    con = connect()
    load_all(con, tmp_path)
    outside = "has values not among" if seed == "therapies" else "is not one of"
    assert [reason for _, _, reason in rejected(con)] == [
        f"{column}: 'not_in_the_seed' {outside} {', '.join(values)}"
    ]
    loaded = sorted(v for (v,) in con.execute(f"select distinct {column} from raw.{entity}").fetchall())
    if seed == "therapies":
        loaded = sorted({t for (ts,) in con.execute("select therapies from raw.sessions").fetchall() for t in ts})
    assert loaded == sorted(values)
    con.close()


# --- GX suites ----------------------------------------------------------------------------------


def _set_expectations():
    for path in sorted(EXPECTATIONS_DIR.glob("*.json")):
        suite = json.loads(path.read_text(encoding="utf-8"))
        for expectation in suite["expectations"]:
            value_set = expectation.get("kwargs", {}).get("value_set")
            if value_set and all(isinstance(v, str) for v in value_set):
                yield suite["name"], expectation["type"], expectation["kwargs"]["column"], value_set


def test_gx_value_lists_agree_with_the_seeds():
    checked = set()
    for suite, kind, column, value_set in _set_expectations():
        assert (suite, column) in GX_SEEDS, f"{suite}.{column}: a value set with no seed"
        seed = seeds.value_set(GX_SEEDS[suite, column])
        if kind == "expect_column_values_to_be_in_set":
            assert tuple(value_set) == seed, f"{suite}.{column} differs from seed {GX_SEEDS[suite, column]}"
            checked.add((suite, column))
        else:  # e.g. not_in_set: a subset of the seed
            assert set(value_set) <= set(seed), f"{suite}.{column}: {value_set} not in the seed"
    assert checked == set(GX_SEEDS)


# --- Python -------------------------------------------------------------------------------------


def test_python_constants_come_from_the_seeds():
    assert frames.AFTERCARE_ADVICE == seeds.value_set("aftercare")
    assert frames.ADVERSE_EVENT_TYPES == seeds.value_set("adverse_events")[1:]
    assert network.ROLES == seeds.value_set("clinician_roles")
    assert network.CONDITIONS == seeds.value_set("conditions")
    assert network.THERAPIES == seeds.value_set("therapies")
    assert network.AFTERCARE == seeds.value_set("aftercare")
    assert network.ADVERSE == seeds.value_set("adverse_events")
    assert network.CHANNELS == seeds.value_set("channels")
    assert network.SEXES == seeds.value_set("sexes")
    assert network.SESSION_STATUSES == seeds.value_set("session_statuses")
    assert network.PLAN_STATUSES == seeds.value_set("plan_statuses")
    # the generator's shares are drawn by position: one share per seed value
    assert len(network.ROLE_SHARES) == len(network.ROLES)
    assert len(network.CONDITION_SHARES) == len(network.CONDITIONS)
    assert len(network.ADVERSE_SHARES_NEEDLING) == len(network.ADVERSE)
    assert set(network.SPOTS) == set(network.CONDITIONS)
    assert set(network.SIDE_TABLE) <= set(seeds.value_set("sides"))


# Files that still spell a value set out, each with why; everything else must read the seeds.
LITERAL_ALLOWED = {
    "src/clinic_outcomes/report/render.py",  # the report's area: its labels and orders move with its own rework
    "src/clinic_outcomes/report/wording.py",  # a label for each value (the words managers read), keyed by value
    "src/clinic_outcomes/metrics/plans.py",  # R2's one definition of evaluated and complete plans (a rule's subset)
}


def test_no_literal_copy_of_a_seed():
    """Three consecutive values of a seed (all of a shorter one) quoted in a row in sql/ or src/ is a copy of it.

    Two are not: a rule may name a pair on purpose (evaluated plans are `complete` or `incomplete`; a bilateral
    spot is `left` or `right`)."""
    patterns = []
    for name in EXPECTED_SEEDS:
        values = seeds.value_set(name)
        width = min(3, len(values))
        for start in range(len(values) - width + 1):
            for quote in ("'", '"'):
                run = r"\s*,\s*".join(f"{quote}{re.escape(v)}{quote}" for v in values[start:start + width])
                patterns.append((name, re.compile(run)))
    found = []
    for path in [*SQL_DIR.rglob("*.sql"), *(ROOT / "src").rglob("*.py")]:
        relative = path.relative_to(ROOT).as_posix()
        if relative in LITERAL_ALLOWED:
            continue
        text = path.read_text(encoding="utf-8")
        found += [f"{relative}: {name}" for name, pattern in patterns if pattern.search(text)]
    assert found == []
