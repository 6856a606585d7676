"""The generator's output against the real loader: clean loads whole, dirty is rejected exactly where planted."""

from __future__ import annotations

import datetime as dt

import pytest

from clinic_outcomes.loading import load
from clinic_outcomes.core import build as core_build
from clinic_outcomes import warehouse
from clinic_outcomes.synthetic.generate import generate
from clinic_outcomes.settings import load_settings

SECRET = b"generated-exports-test-key"


def _load(exports, settings_path):
    con = warehouse.connect(None)
    settings = load_settings(settings_path)
    load.prepare(con, settings, dt.date(2026, 11, 24), 1)
    summary = load.load_exports(con, exports, secret=SECRET, run_id=1)
    core_build.build_core(con)
    return con, summary


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "exports"
    generated = generate(out, patients=60, days=30, seed=5)
    con, summary = _load(out, generated.settings_path)
    return generated, con, summary


def test_clean_output_loads_with_no_rejected_row(clean):
    generated, con, summary = clean
    assert warehouse.scalar(con, "select count(*) from quality.rejected_rows") == 0
    assert summary.rows_rejected == 0 and summary.files_rejected == 0
    # The only file outside the contract is the generator's settings file, beside the drops.
    assert summary.ignored == [("settings.toml", "not inside a drop folder (exports/<drop>/<entity>.csv)")]


def test_clean_output_loads_every_record_the_generator_wrote(clean):
    generated, con, _ = clean
    counts = {
        name: warehouse.scalar(con, f"select count(*) from core.{name}")
        for name in ("sessions", "plans", "needle_sites", "pain_checkins")
    }
    assert counts == {
        "sessions": generated.sessions,
        "plans": generated.plans,
        "needle_sites": generated.needle_sites,
        "pain_checkins": generated.pain_checkins,
    }


def test_every_file_row_is_loaded_or_rejected(clean):
    _, con, _ = clean
    assert warehouse.scalar(
        con, "select count(*) from ops.loaded_files where rows_read <> rows_loaded + rows_rejected"
    ) == 0


def test_dirty_output_is_rejected_exactly_where_planted(tmp_path):
    out = tmp_path / "exports"
    generated = generate(out, patients=60, days=30, seed=5, dirty=True)
    con, summary = _load(out, generated.settings_path)

    planted_rows = {(row.path, row.line) for row in generated.malformed_rows}
    rejected_rows = set(
        con.execute("select source_file, line_number from quality.rejected_rows where line_number is not null").fetchall()
    )
    assert rejected_rows == planted_rows

    rejected_whole = {f.path for f in generated.malformed_files if f.kind in ("missing_column", "garbled_gzip")}
    assert {r.file.relpath for r in summary.files if r.status == "rejected"} == rejected_whole
    stray = {f.path for f in generated.malformed_files if f.kind == "stray_file"}
    assert stray <= {path for path, _ in summary.ignored}
    unknown_columns = {(f.path, f.column) for f in generated.malformed_files if f.kind == "unknown_column"}
    ignored_columns = {
        (r.file.relpath, column) for r in summary.files for column in r.ignored_columns
    }
    assert unknown_columns <= ignored_columns


def test_a_spot_listed_twice_for_a_session_is_rejected_and_the_first_listing_stands(tmp_path):
    from load_fixtures import load_all, rejected, rows, session, site, write_drop

    exports = tmp_path / "exports"
    write_drop(exports, "2026-11-01", "sessions", [session(session_id="s1")])
    write_drop(exports, "2026-11-01", "needle_sites", [
        site(session_id="s1", site="gluteus_medius", side="left", needles="2"),
        site(session_id="s1", site="gluteus_medius", side="right", needles="2"),
        site(session_id="s1", site="Gluteus_Medius", side="LEFT", needles="5"),
    ])
    con = warehouse.connect(None)
    load_all(con, exports)
    assert rows(con, "select site, side, needles from core.needle_sites order by side") == [
        ("gluteus_medius", "left", 2),
        ("gluteus_medius", "right", 2),
    ]
    assert rejected(con) == [(
        "2026-11-01/needle_sites.csv", 4,
        "site: 'Gluteus_Medius' (side 'LEFT') is listed again for session 's1' in this file; the first listing stands",
    )]
