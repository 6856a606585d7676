"""compute_marts gives the same marts whether relief episodes and plan outcomes are worked out for all
patients at once or slice by slice of patients (as it does above ROWS_PER_PATIENT_SLICE input rows)."""

from __future__ import annotations

import datetime as dt

import pytest

from clinic_outcomes.loading import load
from clinic_outcomes.core import build as core_build
from clinic_outcomes.metrics import marts as metrics
from clinic_outcomes.quality import tables as quality_tables
from clinic_outcomes import warehouse
from clinic_outcomes.synthetic.generate import generate
from clinic_outcomes.settings import load_settings
from load_fixtures import SECRET

AS_OF = dt.date(2026, 11, 2)


def _marts(con) -> dict[str, list[tuple]]:
    """Every mart's rows in stored order."""
    return {table: con.execute(f"select * from marts.{table}").fetchall() for table in metrics.MART_TABLES}


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    root = tmp_path_factory.mktemp("slices")
    generate(root / "exports", patients=300, days=60, seed=11, dirty=True, end_date=AS_OF - dt.timedelta(days=1))
    settings = load_settings(str(root / "exports" / "settings.toml"))
    con = warehouse.connect(root / "w.duckdb")
    warehouse.set_variables(con, settings, AS_OF)
    load.prepare(con, settings, AS_OF, 1)
    load.load_exports(con, root / "exports", secret=SECRET, run_id=1)
    core_build.build_core(con)
    quality_tables.build(con, settings, AS_OF)
    # Plans whose patient is not the patient of their sessions (data the checks warn about): their outcomes
    # must still see those sessions, whatever slice either patient falls in.
    con.execute(
        """
        update quality.plan_completion as target set patient_key = moved.other
        from (
            select plan_id, lead(patient_key) over (order by plan_id) as other
            from quality.plan_completion where completion in ('complete', 'incomplete')
        ) as moved
        where target.plan_id = moved.plan_id and moved.other <> target.patient_key
        """
    )
    yield con, settings
    con.close()


def test_slices_of_patients_give_the_same_marts(network, monkeypatch):
    con, settings = network
    # Every build here is a full one (the last build forgotten): an incremental build would recompute no one.
    forget = "delete from ops.metrics_build"
    con.execute(forget)
    whole = metrics.compute_marts(con, settings, AS_OF)
    expected = _marts(con)
    assert expected["relief_duration"] and expected["plan_outcomes"]  # the network exercises both
    rows = con.execute("select (select count(*) from core.sessions) + (select count(*) from core.pain_checkins)").fetchall()[0][0]
    for per_slice in (rows // 3, rows // 7, 50):
        monkeypatch.setattr(metrics, "ROWS_PER_PATIENT_SLICE", per_slice)
        assert metrics.patient_slices(rows) > 2
        con.execute(forget)
        assert metrics.compute_marts(con, settings, AS_OF) == whole
        assert _marts(con) == expected


def test_slice_count_follows_the_input_rows():
    per = metrics.ROWS_PER_PATIENT_SLICE
    assert [metrics.patient_slices(n) for n in (0, 1, per, per + 1, 3 * per)] == [1, 1, 1, 2, 3]
