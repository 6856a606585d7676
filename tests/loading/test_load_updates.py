"""Records sent again in later drops (exports.md, "Layout"): which version wins.

Three nights on one warehouse, each scenario with its own ids:
  night 1 loads drops 2026-11-01 and 2026-11-02;
  night 2 finds drop 2026-11-03, a late folder 2026-10-31 (earlier by name), and
          corrected files re-delivered under the same names in 2026-11-02;
  night 3 finds nothing new but an identical copy of a loaded file in a new drop.
"""

from __future__ import annotations

import hashlib
import hmac
import shutil

import pytest

from clinic_outcomes import warehouse
from load_fixtures import SECRET, checkin, csv_text, ledger, load_all, patient, plan, rows, session, site, write_drop

D1, D2, D3, LATE = "2026-11-01", "2026-11-02", "2026-11-03", "2026-10-31"
NIGHT_1 = (D1, D2)
NIGHT_2 = (D3, LATE)


def at(hour: int, minute: int = 0) -> str:
    return f"2026-10-02T{hour:02d}:{minute:02d}:00Z"


# session_id: its versions as (drop, updated_at, pain_before), then the pain_before that must win
SESSION_VERSIONS = {
    "s_newer_in_later_drop": ([(D1, at(10), "3"), (D2, at(11), "5")], 5),
    "s_older_in_later_drop": ([(D1, at(11), "3"), (D2, at(10), "5")], 3),
    "s_tie_later_drop_wins": ([(D1, at(10), "3"), (D2, at(10), "5")], 5),
    "s_tie_written_with_offset": ([(D1, at(10), "3"), (D2, "2026-10-02T06:00:00-04:00", "5")], 5),
    "s_newer_next_night": ([(D2, at(10), "3"), (D3, at(12), "7")], 7),
    "s_older_next_night": ([(D2, at(10), "3"), (D3, at(9), "7")], 3),
    "s_tie_next_night": ([(D2, at(10), "3"), (D3, at(10), "7")], 7),
    "s_tie_late_folder_loses": ([(D1, at(10), "3"), (LATE, at(10), "9")], 3),
    "s_newer_late_folder_wins": ([(D1, at(10), "3"), (LATE, at(11), "9")], 9),
    "s_same_file_twice": ([(D1, at(10), "3"), (D1, at(9), "4")], 3),
}
# plan_id: versions as (drop, updated_at, status), then the status that must win
PLAN_VERSIONS = {
    "pl_newer_in_later_drop": ([(D1, at(10), "active"), (D2, at(11), "discharged")], "discharged"),
    "pl_older_in_later_drop": ([(D1, at(11), "active"), (D2, at(10), "discharged")], "active"),
    "pl_tie_later_drop_wins": ([(D1, at(10), "active"), (D2, at(10), "cancelled")], "cancelled"),
    "pl_older_next_night": ([(D2, at(10), "active"), (D3, at(9), "cancelled")], "active"),
}
# patient_id: versions as (drop, updated_at, sex), then the sex that must win
PATIENT_VERSIONS = {
    "P_newer_in_later_drop": ([(D1, at(10), "female"), (D2, at(11), "male")], "male"),
    "P_older_in_later_drop": ([(D1, at(11), "female"), (D2, at(10), "male")], "female"),
    "P_tie_later_drop_wins": ([(D1, at(10), "female"), (D2, at(10), "other")], "other"),
    "P_newer_next_night": ([(D1, at(10), "female"), (D3, at(11), "unknown")], "unknown"),
}
# checkin_id: versions as (drop, pain); no updated_at, so the later drop wins
CHECKIN_VERSIONS = {
    "k_later_drop_wins": ([(D1, "4"), (D2, "6")], 6),
    "k_next_night_wins": ([(D2, "4"), (D3, "2")], 2),
    "k_late_folder_loses": ([(D2, "4"), (LATE, "8")], 4),
    "k_sent_once": ([(D1, "3")], 3),
}
# session_id: its site rows per drop, re-sent whole; then the rows that must remain
SITE_VERSIONS = {
    "s_sites_replaced": (
        {
            D1: [("upper_trapezius", "left", "2"), ("upper_trapezius", "right", "2")],
            D2: [("gluteus_medius", "left", "1")],
        },
        [("gluteus_medius", "left", 1)],
    ),
    "s_sites_replaced_next_night": (
        {
            D1: [("lumbar_multifidus", "left", "1"), ("lumbar_multifidus", "right", "1")],
            D3: [("suboccipitals", "midline", "4"), ("upper_trapezius", "left", None)],
        },
        [("suboccipitals", "midline", 4), ("upper_trapezius", "left", None)],
    ),
    "s_sites_late_folder_loses": (
        {D2: [("pronator_teres", "left", "1")], LATE: [("pronator_teres", "right", "1")]},
        [("pronator_teres", "left", 1)],
    ),
    "s_sites_untouched": (
        {D1: [("quadratus_lumborum", "left", "2"), ("quadratus_lumborum", "right", "3")]},
        [("quadratus_lumborum", "left", 2), ("quadratus_lumborum", "right", 3)],
    ),
}

# Night 2 re-delivers these files of D2 corrected: same name, new content; the corrections win.
CORRECTED_SESSION = ("s_corrected", at(10), "3", "4")  # id, updated_at (unchanged), first pain_before, corrected
CORRECTED_CHECKIN = ("k_corrected", "5", "1")
CORRECTED_SITES = ("s_sites_corrected", [("gluteus_medius", "left", "1"), ("gluteus_medius", "right", "1")], [("gluteus_medius", "left", "2")])


def _drop_rows(drop: str, corrected: bool = False) -> dict[str, list[dict]]:
    """Every row of one drop, per entity, in scenario order."""
    files: dict[str, list[dict]] = {"sessions": [], "plans": [], "patients": [], "pain_checkins": [], "needle_sites": []}
    for sid, (versions, _) in SESSION_VERSIONS.items():
        files["sessions"] += [session(session_id=sid, updated_at=ts, pain_before=pain) for d, ts, pain in versions if d == drop]
    for pid, (versions, _) in PLAN_VERSIONS.items():
        files["plans"] += [plan(plan_id=pid, updated_at=ts, status=status) for d, ts, status in versions if d == drop]
    for pid, (versions, _) in PATIENT_VERSIONS.items():
        files["patients"] += [patient(patient_id=pid, updated_at=ts, sex=sex) for d, ts, sex in versions if d == drop]
    for cid, (versions, _) in CHECKIN_VERSIONS.items():
        files["pain_checkins"] += [checkin(checkin_id=cid, pain=pain) for d, pain in versions if d == drop]
    for sid, (by_drop, _) in SITE_VERSIONS.items():
        files["needle_sites"] += [site(session_id=sid, site=s, side=side, needles=n) for s, side, n in by_drop.get(drop, [])]
    if drop == D2:
        sid, ts, first, fixed = CORRECTED_SESSION
        files["sessions"].append(session(session_id=sid, updated_at=ts, pain_before=fixed if corrected else first))
        cid, first, fixed = CORRECTED_CHECKIN
        files["pain_checkins"].append(checkin(checkin_id=cid, pain=fixed if corrected else first))
        sid, first_sites, fixed_sites = CORRECTED_SITES
        files["needle_sites"] += [
            site(session_id=sid, site=s, side=side, needles=n) for s, side, n in (fixed_sites if corrected else first_sites)
        ]
    return {entity: file_rows for entity, file_rows in files.items() if file_rows}


def _write(exports, drop: str, corrected: bool = False, only: tuple[str, ...] | None = None) -> None:
    for entity, file_rows in _drop_rows(drop, corrected).items():
        if only is None or entity in only:
            write_drop(exports, drop, entity, csv_text(file_rows, columns=list(file_rows[0])))


CORE_TABLES = ("sessions", "plans", "patients", "pain_checkins", "needle_sites")


def _core_snapshot(con) -> dict[str, list[tuple]]:
    return {name: rows(con, f"select * from core.{name} order by all") for name in CORE_TABLES}


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    exports = tmp_path_factory.mktemp("updates") / "exports"
    con = warehouse.connect(None)
    for drop in NIGHT_1:
        _write(exports, drop)
    first = load_all(con, exports, run_id=1)

    for drop in NIGHT_2:
        _write(exports, drop)
    _write(exports, D2, corrected=True, only=("sessions", "pain_checkins", "needle_sites"))
    second = load_all(con, exports, run_id=2)
    after_second = _core_snapshot(con)
    ledger_after_second = ledger(con)

    (exports / "2026-11-04").mkdir()
    shutil.copy(exports / D1 / "plans.csv", exports / "2026-11-04" / "plans.csv")
    third = load_all(con, exports, run_id=3)
    yield {
        "con": con,
        "exports": exports,
        "summaries": (first, second, third),
        "after_second": after_second,
        "ledger_after_second": ledger_after_second,
    }
    con.close()


@pytest.mark.parametrize("session_id", [*SESSION_VERSIONS, CORRECTED_SESSION[0]])
def test_session_version_that_wins(nights, session_id):
    expected = SESSION_VERSIONS[session_id][1] if session_id in SESSION_VERSIONS else int(CORRECTED_SESSION[3])
    assert rows(nights["con"], "select pain_before from core.sessions where session_id = $id", {"id": session_id}) == [(expected,)]


@pytest.mark.parametrize("plan_id", PLAN_VERSIONS)
def test_plan_version_that_wins(nights, plan_id):
    assert rows(nights["con"], "select status from core.plans where plan_id = $id", {"id": plan_id}) == [(PLAN_VERSIONS[plan_id][1],)]


@pytest.mark.parametrize("patient_id", PATIENT_VERSIONS)
def test_patient_version_that_wins(nights, patient_id):
    key = hmac.new(SECRET, patient_id.encode(), hashlib.sha256).hexdigest()
    assert rows(nights["con"], "select sex from core.patients where patient_key = $key", {"key": key}) == [(PATIENT_VERSIONS[patient_id][1],)]


@pytest.mark.parametrize("checkin_id", [*CHECKIN_VERSIONS, CORRECTED_CHECKIN[0]])
def test_checkin_version_that_wins(nights, checkin_id):
    expected = CHECKIN_VERSIONS[checkin_id][1] if checkin_id in CHECKIN_VERSIONS else int(CORRECTED_CHECKIN[2])
    assert rows(nights["con"], "select pain from core.pain_checkins where checkin_id = $id", {"id": checkin_id}) == [(expected,)]


@pytest.mark.parametrize("session_id", [*SITE_VERSIONS, CORRECTED_SITES[0]])
def test_needle_sites_are_replaced_whole_per_session(nights, session_id):
    if session_id in SITE_VERSIONS:
        expected = SITE_VERSIONS[session_id][1]
    else:
        expected = [(s, side, int(n)) for s, side, n in CORRECTED_SITES[2]]
    assert rows(
        nights["con"], "select site, side, needles from core.needle_sites where session_id = $id order by site, side", {"id": session_id}
    ) == expected


def test_one_row_per_record_in_core(nights):
    con = nights["con"]
    for table, key in (("sessions", "session_id"), ("plans", "plan_id"), ("patients", "patient_key"), ("pain_checkins", "checkin_id")):
        assert rows(con, f"select count(*) - count(distinct {key}) from core.{table}") == [(0,)], table
    assert rows(con, "select count(*) - count(distinct (session_id, site, side)) from core.needle_sites") == [(0,)]


def test_the_second_night_reads_only_new_and_corrected_files(nights):
    _, second, _ = nights["summaries"]
    assert sorted(f.file.relpath for f in second.files) == sorted(
        [f"{D2}/needle_sites.csv", f"{D2}/pain_checkins.csv", f"{D2}/sessions.csv"]
        + [f"{drop}/{entity}.csv" for drop in NIGHT_2 for entity in _drop_rows(drop)]
    )
    assert sorted(second.already_loaded) == sorted(
        [f"{D1}/{entity}.csv" for entity in _drop_rows(D1)] + [f"{D2}/plans.csv", f"{D2}/patients.csv"]
    )


def test_a_corrected_file_under_the_same_name_is_a_new_ledger_row(nights):
    con = nights["con"]
    got = rows(
        con,
        f"select run_id, sha256 from ops.loaded_files where path = '{D2}/pain_checkins.csv' order by run_id",
    )
    assert [run_id for run_id, _ in got] == [1, 2]
    assert got[0][1] != got[1][1]


def test_a_redelivered_identical_file_is_skipped_and_changes_nothing(nights):
    con = nights["con"]
    _, _, third = nights["summaries"]
    assert third.files == []
    assert "2026-11-04/plans.csv" in third.already_loaded
    assert ledger(con) == nights["ledger_after_second"]
    assert _core_snapshot(con) == nights["after_second"]


def test_the_ledger_holds_each_files_content_hash(nights):
    con = nights["con"]
    for path, sha256 in rows(con, f"select path, sha256 from ops.loaded_files where path like '{D1}/%'"):
        assert sha256 == hashlib.sha256(nights["exports"].joinpath(path).read_bytes()).hexdigest(), path
    assert rows(con, "select count(distinct sha256) = count(*) from ops.loaded_files") == [(True,)]
