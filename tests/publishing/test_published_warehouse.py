"""The published warehouse as analysts meet it: written in a storage version DuckDB 1.5 opens, every table,
view and column commented, and readable by DuckDB 1.5 itself (installed into a throwaway venv by the test).

The DuckDB 1.5 test needs the package registry: it is skipped, with the reason, only when the registry cannot
be reached, and never where CLINIC_OUTCOMES_REQUIRE_REGISTRY=1 (CI sets it).

Mutants tried (each made a fast test here fail): stage_copy's first-night file made by a plain connect,
without the storage version; the version check comparing the setting's text with the tag ('v1.5.0' vs
'v1.5.0+': every night would rewrite the file). The slow tests were run once, passing, not under mutants.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request

import duckdb
import pytest

import flow_helpers as fh
from flow_helpers import prefect_server  # noqa: F401  (fixture)
from clinic_outcomes import warehouse
from clinic_outcomes.publishing import publish


def _make_warehouse(path, storage_version=None):
    con = duckdb.connect()
    option = f" (storage_version '{storage_version}')" if storage_version else ""
    con.execute(f"attach '{path}' as w{option}")
    con.execute("create schema w.core")
    con.execute("create table w.core.t as select range as x from range(1000)")
    con.execute("comment on table w.core.t is 'numbers'")
    con.execute("comment on column w.core.t.x is 'a number'")
    con.execute("create schema w.views")
    con.execute("create view w.views.v as select count(*) as n from w.core.t")
    con.execute("detach w")
    con.close()


def _read(path):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return (
            con.execute("select count(*), sum(x) from core.t").fetchall(),
            con.execute("select n from views.v").fetchall(),
            con.execute(
                "select table_name, column_name, comment from duckdb_columns() where schema_name = 'core'"
            ).fetchall(),
            con.execute("select comment from duckdb_tables() where table_name = 't'").fetchall(),
        )
    finally:
        con.close()


def test_first_night_creates_the_warehouse_in_the_set_storage_version(tmp_path):
    building = tmp_path / ".w.duckdb.run1.building"
    publish.stage_copy(tmp_path / "w.duckdb", building, "v1.5.0")
    assert publish.storage_tag(building) == "v1.5.0+"
    con = duckdb.connect(str(building))  # a later write keeps the version
    con.execute("create table t as select 1 as x")
    con.close()
    assert publish.storage_tag(building) == "v1.5.0+"


def test_a_warehouse_in_another_version_is_rewritten_once_with_its_rows_views_and_comments(tmp_path):
    published, building = tmp_path / "w.duckdb", tmp_path / ".w.duckdb.run2.building"
    _make_warehouse(published)  # DuckDB 2.0's own default (what nights before the setting wrote)
    assert publish.storage_tag(published) != "v1.5.0+"

    publish.stage_copy(published, building, "v1.5.0")

    assert publish.storage_tag(building) == "v1.5.0+"
    assert _read(building) == _read(published)


def test_a_warehouse_already_in_the_set_version_is_copied_byte_for_byte(tmp_path):
    published, building = tmp_path / "w.duckdb", tmp_path / ".w.duckdb.run2.building"
    _make_warehouse(published, "v1.5.0")
    publish.stage_copy(published, building, "v1.5.0")
    assert building.read_bytes() == published.read_bytes()


# --------------------------------------------------------------------------- a published night


@pytest.fixture(scope="module")
def published_site(prefect_server):  # noqa: F811
    return fh.published_all_drops(prefect_server)


@pytest.mark.slow
def test_every_table_view_and_column_of_a_published_warehouse_is_commented(published_site):
    con = duckdb.connect(str(published_site.warehouse), read_only=True)
    try:
        assert warehouse.undocumented(con) == []
        schemas = {row[0] for row in con.execute("select distinct schema_name from duckdb_columns() where not internal").fetchall()}
        views = con.execute("select view_name from duckdb_views() where schema_name = 'views' order by 1").fetchall()
        rejected = con.execute(
            "select column_name, comment from duckdb_columns() where schema_name = 'quality' and table_name = 'rejected_rows'"
        ).fetchall()
    finally:
        con.close()
    assert schemas <= set(warehouse.SCHEMAS)  # nothing outside the schemas undocumented() looks at
    assert [v[0] for v in views] == ["monthly_needling_by_clinic", "plan_completion_by_clinic", "retreatment_flags_last_30_days"]
    assert {c for c, _ in rejected} == {"run_id", "source_file", "line_number", "entity", "reason", "record"}
    assert all(comment for _, comment in rejected)
    assert publish.storage_tag(published_site.warehouse) == "v1.5.0+"


READ_EVERYTHING = """
import json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
names = con.execute(
    "select schema_name || '.' || table_name from duckdb_tables() where not internal "
    "union all select schema_name || '.' || view_name from duckdb_views() where not internal order by 1"
).fetchall()
counts = {name: con.execute(f"select count(*) from {name}").fetchall()[0][0] for (name,) in names}
print(json.dumps({"version": duckdb.__version__, "counts": counts}))
"""


def _registry_reachable() -> bool:
    index = os.environ.get("UV_INDEX_URL") or os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple/"
    try:
        with urllib.request.urlopen(index.rstrip("/") + "/duckdb/", timeout=15):
            return True
    except OSError:
        return False


@pytest.mark.slow
def test_duckdb_1_5_opens_the_published_warehouse_and_reads_every_table_and_view(published_site, tmp_path):
    uv = shutil.which("uv")
    assert uv, "uv is needed to make the throwaway DuckDB 1.5 venv"
    venv = tmp_path / "duckdb15"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(python), "duckdb==1.5.*"],
        capture_output=True, text=True, timeout=600,
    )
    if install.returncode != 0:
        if os.environ.get("CLINIC_OUTCOMES_REQUIRE_REGISTRY") != "1" and not _registry_reachable():
            pytest.skip(f"the package registry is unreachable, so DuckDB 1.5 cannot be installed: {install.stderr[-300:]}")
        pytest.fail(f"uv pip install duckdb==1.5.* failed:\n{install.stderr[-3000:]}")

    done = subprocess.run(
        [str(python), "-c", READ_EVERYTHING, str(published_site.warehouse)], capture_output=True, text=True, timeout=300
    )

    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    assert seen["version"].startswith("1.5.")
    con = duckdb.connect(str(published_site.warehouse), read_only=True)
    try:
        expected = {name: con.execute(f"select count(*) from {name}").fetchall()[0][0] for name in seen["counts"]}
        views = con.execute("select count(*) from duckdb_views() where schema_name = 'views'").fetchall()[0][0]
    finally:
        con.close()
    assert seen["counts"] == expected
    assert views == 3 and sum(name.startswith("views.") for name in seen["counts"]) == 3
    assert seen["counts"]["core.sessions"] > 0
