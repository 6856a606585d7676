"""The per-patient marts recomputed for the patients a night touched (metrics/incremental.py) equal a full build:
night after night on a generated network, with a later drop that moves a session and a check-in to another
patient, cancels a session, changes a pain score and moves a plan; and on a night with no new rows whose as-of
date moves plans out of progress. The oracle is compute_marts itself with the last build forgotten (a full build).

Mutants tried (each made a test here fail):
- metrics_patient_digests.sql without the 'plan session' rows (a plan's sessions of another patient) ->
  test_a_plan_whose_sessions_are_another_patient_s (the plan keeps its stale baseline);
- metrics_touched_patients.sql comparing patient_key only, not the digest -> test_the_next_drop_recomputes_only_
  its_patients and two more;
- incremental.carried_over keeping the touched patients' rows too (no anti join) -> test_the_next_drop_recomputes_
  only_its_patients, test_a_later_drop_that_moves_records_between_patients (duplicate rows);
- the plan digest without window_end and completion -> test_a_night_with_no_new_rows_but_a_later_as_of_date and
  two more;
- marts._episodes_and_outcomes giving plan_outcomes only the touched patients' sessions (not every session, which
  it joins by plan) -> test_a_plan_whose_sessions_are_another_patient_s.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import shutil
from pathlib import Path

import duckdb
import pytest

from clinic_outcomes import warehouse
from clinic_outcomes.core import build as core_build
from clinic_outcomes.loading import load
from clinic_outcomes.metrics import incremental
from clinic_outcomes.metrics import marts as metrics
from clinic_outcomes.metrics.casemix import CASEMIX_TABLES
from clinic_outcomes.quality import tables as quality_tables
from clinic_outcomes.settings import load_settings
from clinic_outcomes.synthetic.generate import generate
from load_fixtures import SECRET

END = dt.date(2026, 11, 1)  # the generated network's last drop
TABLES = (*metrics.MART_TABLES, *CASEMIX_TABLES)


def _marts(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    return {table: con.execute(f"select * from marts.{table} order by all").fetchall() for table in TABLES}


def _same(left: dict[str, list[tuple]], right: dict[str, list[tuple]]) -> bool:
    """Equal marts: every per-patient mart and summary exactly; R8's tables to 1e-9 (its cluster-robust intervals
    differ in the last bit between two full builds of the same rows: threaded BLAS sums)."""
    assert left.keys() == right.keys()
    for table in left:
        if table in CASEMIX_TABLES:
            assert len(left[table]) == len(right[table]), table
            for a, b in zip(left[table], right[table]):
                assert len(a) == len(b), table
                for x, y in zip(a, b):
                    if isinstance(x, float) and isinstance(y, float):
                        assert x == pytest.approx(y, rel=1e-9, abs=1e-12, nan_ok=True), (table, a, b)
                    else:
                        assert x == y, (table, a, b)
        else:
            assert left[table] == right[table], table
    return True


def _build(con: duckdb.DuckDBPyConnection) -> tuple:
    return con.execute("select run_id, patients, patients_recomputed from ops.metrics_build").fetchall()[0]


class Night:
    """A warehouse fed drop by drop, as the nightly flow feeds it (minus validation, report and publishing)."""

    def __init__(self, root: Path) -> None:
        self.all = root / "all"
        generate(self.all, patients=250, days=45, seed=23, dirty=True, end_date=END)
        self.exports = root / "exports"
        self.exports.mkdir()
        shutil.copy(self.all / "settings.toml", root / "settings.toml")
        self.settings = load_settings(str(root / "settings.toml"))
        self.drops = sorted(p.name for p in self.all.iterdir() if p.is_dir())
        self.con = warehouse.connect(root / "w.duckdb")
        self.run = 0

    def add_drops(self, names) -> None:
        for name in names:
            shutil.copytree(self.all / name, self.exports / name, copy_function=os.link)

    def night(self, as_of: dt.date) -> dict[str, list[tuple]]:
        """Load what is new, build core and quality, compute the marts; the marts as the night left them."""
        self.run += 1
        warehouse.set_variables(self.con, self.settings, as_of)
        load.prepare(self.con, self.settings, as_of, self.run)
        load.load_exports(self.con, self.exports, secret=SECRET, run_id=self.run)
        core_build.build_core(self.con)
        quality_tables.build(self.con, self.settings, as_of)
        metrics.compute_marts(self.con, self.settings, as_of)
        return _marts(self.con)

    def full(self, as_of: dt.date) -> dict[str, list[tuple]]:
        """The marts of a full build over the same warehouse (the last build forgotten)."""
        self.con.execute("delete from ops.metrics_build")
        metrics.compute_marts(self.con, self.settings, as_of)
        assert _build(self.con)[2] == _build(self.con)[1]  # every patient recomputed
        return _marts(self.con)


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    state = Night(tmp_path_factory.mktemp("incremental-marts"))
    state.add_drops(state.drops[:-3])
    state.night(END - dt.timedelta(days=2))
    yield state
    state.con.close()


def _rows(folder: Path, entity: str) -> list[dict[str, str]]:
    """An export file's rows (csv, csv.gz or parquet), columns by their lower-case names."""
    [path] = [p for p in folder.iterdir() if p.name.split(".")[0] == entity]
    reader = f"read_parquet('{path}')" if path.suffix == ".parquet" else f"read_csv('{path}', all_varchar = true)"
    frame = duckdb.sql(f"select * from {reader}").fetchall()
    columns = [c.lower() for c in duckdb.sql(f"select * from {reader}").columns]
    return [{c: (None if v is None else str(v)) for c, v in zip(columns, row)} for row in frame]


def _write(folder: Path, entity: str, rows: list[dict[str, str | None]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{entity}.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_the_first_build_is_full_and_a_night_without_change_recomputes_no_one(night):
    run, patients, recomputed = _build(night.con)
    assert patients > 200 and recomputed == patients
    before = _marts(night.con)
    metrics.compute_marts(night.con, night.settings, END - dt.timedelta(days=2))
    assert _build(night.con)[2] == 0
    assert _same(_marts(night.con), before)
    assert before["relief_duration"] and before["plan_outcomes"] and before["session_relief"]


def test_the_next_drop_recomputes_only_its_patients(night):
    night.add_drops(night.drops[-3:-2])
    incremental_marts = night.night(END - dt.timedelta(days=1))
    _, patients, recomputed = _build(night.con)
    assert 0 < recomputed < patients / 2
    assert _same(incremental_marts, night.full(END - dt.timedelta(days=1)))


def test_a_later_drop_that_moves_records_between_patients(night):
    night.add_drops(night.drops[-2:-1])
    entities = ("sessions", "pain_checkins", "plans")
    first = next(night.all / name for name in night.drops
                 if all(any(p.name.split(".")[0] == e for p in (night.all / name).iterdir()) for e in entities))
    sessions = [r for r in _rows(first, "sessions") if r["status"] == "completed" and r["pain_before"]]
    checkins = _rows(first, "pain_checkins")
    plans = _rows(first, "plans")
    later = "2026-12-01T00:00:00+00:00"
    moved, cancelled, repainted = sessions[0], sessions[1], sessions[2]
    other = next(r["patient_id"] for r in sessions if r["patient_id"] != moved["patient_id"])
    updated_sessions = [
        {**moved, "patient_id": other, "updated_at": later},
        {**cancelled, "status": "cancelled", "updated_at": later},
        {**repainted, "pain_after": "0" if repainted["pain_after"] != "0" else "9", "updated_at": later},
    ]
    checkin = checkins[0]
    updated_checkins = [{**checkin, "patient_id": other, "pain": "10" if checkin["pain"] != "10" else "0"}]
    plan = plans[0]
    updated_plans = [{**plan, "patient_id": other, "updated_at": later}]
    drop = night.exports / (END + dt.timedelta(days=5)).isoformat()
    _write(drop, "sessions", updated_sessions)
    _write(drop, "pain_checkins", updated_checkins)
    _write(drop, "plans", updated_plans)
    incremental_marts = night.night(END)
    _, patients, recomputed = _build(night.con)
    assert 0 < recomputed < patients / 2
    moved_now = night.con.execute(
        "select count(*) from core.sessions where session_id = ? and status = 'completed'", [moved["session_id"]]
    ).fetchall()[0][0]
    assert moved_now == 1  # the later version won
    assert _same(incremental_marts, night.full(END))


def test_a_night_with_no_new_rows_but_a_later_as_of_date(night):
    later = END + dt.timedelta(days=40)  # plans leave progress: R2 rows change without a new row
    before = night.con.execute("select count(*) from quality.plan_completion where completion = 'in_progress'").fetchall()
    incremental_marts = night.night(later)
    after = night.con.execute("select count(*) from quality.plan_completion where completion = 'in_progress'").fetchall()
    assert after[0][0] < before[0][0]
    _, patients, recomputed = _build(night.con)
    assert 0 < recomputed
    assert _same(incremental_marts, night.full(later))


def _latest(night: Night, entity: str, key: str, value: str) -> dict[str, str | None]:
    """The latest export row of a record (`key` = `value`) across every drop the warehouse has read."""
    found = None
    for folder in sorted(p for p in night.exports.iterdir() if p.is_dir()):
        if any(p.name.split(".")[0] == entity for p in folder.iterdir()):
            found = next((r for r in _rows(folder, entity) if r.get(key) == value), found)
    assert found is not None, (entity, value)
    return found


def test_a_plan_whose_sessions_are_another_patient_s(night):
    """A plan moved to another patient keeps its sessions (R5 reaches them by plan_id): touching either patient
    alone must recompute the plan's outcome."""
    plan_id, first_session = night.con.execute(
        "select outcomes.plan_id, arg_min(sessions.session_id, sessions.started_at) "
        "from marts.plan_outcomes as outcomes "
        "inner join core.sessions as sessions on sessions.plan_id = outcomes.plan_id "
        "where sessions.status = 'completed' and sessions.pain_before is not null "
        "group by all order by all limit 1"
    ).fetchall()[0]
    plan = _latest(night, "plans", "plan_id", plan_id)
    session = _latest(night, "sessions", "session_id", first_session)
    newcomer = next(r for r in _rows(night.exports / night.drops[-4], "sessions")
                    if r["patient_id"] not in (plan["patient_id"], session["patient_id"]))["patient_id"]
    later = dt.datetime(2026, 12, 10, tzinfo=dt.timezone.utc)
    as_of = END + dt.timedelta(days=41)
    steps = [  # (entity, rows): each a night of its own
        ("plans", [{**plan, "patient_id": newcomer, "updated_at": later.isoformat()}]),
        # the plan's new patient alone is touched: the outcome still needs the sessions of the old one
        ("pain_checkins", [{"checkin_id": "CHK-INCREMENTAL-1", "patient_id": newcomer,
                            "recorded_at": "2026-11-20T12:00:00+00:00", "pain": "4", "channel": "app"}]),
        # the sessions' patient alone is touched: the plan's outcome (its baseline) changes with it
        ("sessions", [{**session, "pain_before": "9" if session["pain_before"] != "9" else "8",
                       "updated_at": (later + dt.timedelta(days=1)).isoformat()}]),
    ]
    for day, (entity, rows) in enumerate(steps):
        _write(night.exports / (END + dt.timedelta(days=10 + day)).isoformat(), entity, rows)
        incremental_marts = night.night(as_of)
        _, patients, recomputed = _build(night.con)
        assert 0 < recomputed < patients / 2, entity
        assert _same(incremental_marts, night.full(as_of))
    assert night.con.execute("select count(*) from marts.plan_outcomes where plan_id = ?", [plan_id]).fetchall() == [(1,)]


def test_a_changed_rule_means_a_full_build(night):
    import dataclasses

    rules = dataclasses.replace(night.settings.rules, mcid_points=3.0)
    assert incremental.fingerprint(rules) != incremental.fingerprint(night.settings.rules)
    metrics.compute_marts(night.con, dataclasses.replace(night.settings, rules=rules), END)
    assert _build(night.con)[2] == _build(night.con)[1]
