"""The generator's planted re-treatments are exactly what R1 finds: GenerationSummary.planted, counted while
the network was drawn, against quality.retreatment_flags after the real loader read the files it wrote.

Mutants tried (each applied, tests run, reverted):
- sql/models/quality/retreatment_checks.sql `< getvariable('retreatment_window_hours')` as `<=`: the spot pairs
  planted at exactly 72 h become flags; killed by test_planted_retreatments_are_the_flags_r1_finds and
  test_spots_needled_again_at_exactly_72_hours_are_checked_and_not_flagged.
- `hours_since_previous >= 0` as `> 0`: survives here (the generator plants no two needling sessions of a
  patient at the same instant); tests/quality/test_retreatment.py's tie test kills it.
"""

from __future__ import annotations

import datetime as dt

import pytest

from clinic_outcomes import warehouse
from clinic_outcomes.settings import load_settings
from clinic_outcomes.synthetic.generate import generate
from load_fixtures import load_all, rows
from gx_fixtures import build_quality


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    out = tmp_path_factory.mktemp("planted") / "exports"
    summary = generate(out, patients=120, days=35, seed=11)
    settings = load_settings(summary.settings_path)
    as_of = summary.end_date + dt.timedelta(days=1)
    con = warehouse.connect(None)
    load_all(con, out, settings=settings, as_of=as_of)
    build_quality(con, settings, as_of)
    yield summary, con
    con.close()


def test_planted_retreatments_are_the_flags_r1_finds(network):
    summary, con = network
    planted = summary.planted
    assert planted["retreatment_flags_under_72h"] > 10  # the network is big enough to say something
    flags, sessions = rows(con, "select count(*), count(distinct session_id) from quality.retreatment_flags")[0]
    assert (flags, sessions) == (planted["retreatment_flags_under_72h"], planted["retreatment_sessions_under_72h"])


def test_spots_needled_again_at_exactly_72_hours_are_checked_and_not_flagged(network):
    summary, con = network
    exactly = rows(
        con,
        "select count(*), count(*) filter (where retreated_too_soon) from quality.retreatment_checks "
        "where previous_session_id is not null and abs(hours_since_previous - 72) < 1e-9",
    )[0]
    assert exactly == (summary.planted["spot_pairs_exactly_72h"], 0)


def test_every_session_and_site_the_generator_wrote_was_loaded(network):
    summary, con = network
    assert rows(con, "select count(*) from quality.rejected_rows") == [(0,)]
    assert rows(con, "select count(*) from core.sessions") == [(summary.sessions,)]
    assert rows(con, "select count(*) from core.needle_sites") == [(summary.needle_sites,)]
