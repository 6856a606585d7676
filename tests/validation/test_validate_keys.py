"""Identifiers reach GX as row numbers when no uniqueness check over them can fail (flows/validate._frame).

Whatever form a key column reaches GX in, every result row must be the one its
text gives: the same counts, percentages and samples of unexpected values,
with failing and with clean data.
"""

from __future__ import annotations

import pandas as pd
import pytest

from clinic_outcomes.validation import validate
from clinic_outcomes.settings import Settings
from tests.validation import test_validate
from tests.gx_fixtures import build_quality, core_connection
from tests.validate_key_fixtures import AS_OF, BROKEN_KEYS, MISSING_KEYS

DATASETS = {
    "broken_keys": BROKEN_KEYS,
    "missing_keys": MISSING_KEYS,
    "flawed": test_validate.FLAWED,
    "clean": test_validate.CLEAN,
}


def _results(con, monkeypatch, *, as_text: bool) -> list[dict]:
    with monkeypatch.context() as patch:
        if as_text:
            patch.setattr(validate.SuiteFile, "keys", property(lambda suite: validate.NO_KEYS))
        outcome = validate.validate(con, run_id=1, settings=Settings(), as_of=AS_OF, docs_dir=None)
    return [{k: v for k, v in row.items() if k != "evaluated_at"} for row in outcome.results]


@pytest.mark.parametrize("name", DATASETS)
def test_every_result_is_the_one_the_text_of_the_keys_gives(name, monkeypatch):
    con = core_connection(as_of=AS_OF, **DATASETS[name])
    build_quality(con, Settings(), AS_OF)
    assert _results(con, monkeypatch, as_text=False) == _results(con, monkeypatch, as_text=True)


def _frames(data) -> dict[str, pd.DataFrame]:
    con = core_connection(as_of=AS_OF, **data)
    build_quality(con, Settings(), AS_OF)
    return {
        suite.name: validate._frame(con, suite.frame_sql, text_columns=suite.regex_columns, keys=suite.keys)
        for suite in validate.load_suites()
    }


def _is_text(column: pd.Series) -> bool:
    return column.dtype == "category" and not pd.api.types.is_integer_dtype(column.cat.categories)


def test_keys_without_repeats_reach_gx_as_row_numbers_null_where_missing():
    frames = _frames(MISSING_KEYS)
    sessions = frames["core_sessions"]
    assert sessions["session_id"].astype("Int64").tolist() == [0, pd.NA, 1, 2]
    assert sessions["patient_key"].astype("Int64").tolist() == [0, 0, pd.NA, 0]  # only a not-null check reads it
    # columns a value check reads, and instants, stay as they are
    assert _is_text(sessions["status"]) and str(sessions["started_at"].dtype).startswith("datetime64")
    assert frames["core_needle_sites"]["session_id"].isna().tolist() == [False, False, True, False]
    assert not _is_text(frames["core_needle_sites"]["session_id"])
    assert frames["core_needle_sites"]["site"].dtype == "str"  # read by the regex check
    for suite, column in [("core_pain_checkins", "checkin_id"), ("core_plans", "plan_id"), ("core_patients", "patient_key")]:
        assert not _is_text(frames[suite][column]), suite


def test_a_frame_whose_uniqueness_check_fails_keeps_the_text_of_its_keys():
    frames = _frames(BROKEN_KEYS)
    # every suite of BROKEN_KEYS repeats a key: GX must show the repeated values
    for suite, column in [("core_sessions", "session_id"), ("core_sessions", "patient_key"),
                          ("core_needle_sites", "session_id"), ("core_pain_checkins", "checkin_id"),
                          ("core_plans", "plan_id"), ("core_patients", "patient_key")]:
        assert _is_text(frames[suite][column]), (suite, column)


def test_a_compound_key_repeated_only_where_a_column_is_null_keeps_the_text():
    # pandas (so GX) counts two rows with a null in the same column as repeats
    frames = _frames(dict(needle_sites=[{"session_id": None, "site": "neck"}, {"session_id": None, "site": "neck"}]))
    assert _is_text(frames["core_needle_sites"]["session_id"])
    frames = _frames(dict(needle_sites=[{"session_id": None, "site": "neck"}, {"session_id": None, "site": "back"}]))
    assert not _is_text(frames["core_needle_sites"]["session_id"])


def test_key_columns_of_the_suites():
    suites = {suite.name: suite.keys for suite in validate.load_suites()}
    assert suites["core_sessions"].unique_sets == (("session_id",),)
    assert {"session_id", "patient_key", "clinic_id", "clinician_id"} <= suites["core_sessions"].columns
    assert suites["core_needle_sites"] == validate.KeyColumns(frozenset({"session_id"}), (("session_id", "site", "side"),))
    assert suites["core_pain_checkins"].unique_sets == (("checkin_id",),)
    for keys in suites.values():  # no column a value check reads
        assert not keys.columns & {"site", "side", "status", "channel", "sex", "clinician_role", "therapy", "completion"}


def test_a_suite_with_a_row_condition_or_extra_arguments_keeps_every_column(tmp_path):
    import json

    def suite(*expectations):
        path = tmp_path / "core_sessions.json"
        path.write_text(json.dumps({"name": "core_sessions", "expectations": [
            {"type": kind, "kwargs": kwargs, "meta": {"severity": "critical"}} for kind, kwargs in expectations
        ]}))
        return validate.load_suites(tmp_path)[0].keys

    assert suite(("expect_column_values_to_be_unique", {"column": "session_id"})).columns == {"session_id"}
    assert suite(("expect_column_values_to_be_unique", {"column": "session_id", "mostly": 0.9})).columns == set()
    assert suite(
        ("expect_column_values_to_be_unique", {"column": "session_id"}),
        ("expect_column_values_to_not_be_null", {"column": "status", "row_condition": 'session_id=="s1"',
                                                 "condition_parser": "pandas"}),
    ) == validate.NO_KEYS
