"""Core rows whose identifiers fail every key check GX runs (nulls, repeats, repeated compound keys).

Shared by tests/test_validate_keys.py and a before/after comparison script: the
results of validate() over these rows must not depend on how identifier columns
reach GX.
"""

from __future__ import annotations

import datetime as dt

from gx_fixtures import at

AS_OF = dt.date(2026, 11, 23)

# More repeats of one key than GX's sample of 20 unexpected values, interleaved with other
# keys, so the order and the cut of the sample are compared too.
_REPEATS = [f"s{n % 3}" for n in range(26)]

BROKEN_KEYS = dict(
    sessions=[
        *({"session_id": sid, "started_at": at("2026-09-01 10:00")} for sid in _REPEATS),
        {"session_id": None, "started_at": at("2026-09-02 10:00")},
        {"session_id": None, "started_at": at("2026-09-03 10:00")},
        {"session_id": "s_no_patient", "patient_key": None, "started_at": at("2026-09-04 10:00")},
        {"session_id": "s_no_clinic", "clinic_id": None, "clinician_id": None, "started_at": at("2026-09-05 10:00")},
        {"session_id": "s_no_times", "started_at": None, "updated_at": None, "clinic_timezone": None},
    ],
    needle_sites=[
        {"session_id": "s0", "site": "upper_trapezius"},
        {"session_id": "s0", "site": "upper_trapezius"},  # the same site twice
        {"session_id": "s0", "site": "upper_trapezius", "side": "right"},
        {"session_id": None, "site": "gluteus_medius"},  # no session, twice: a repeated compound key
        {"session_id": None, "site": "gluteus_medius"},
        {"session_id": None, "site": None, "side": None},  # every key column missing: GX skips the row
        {"session_id": None, "site": None, "side": None},
        {"session_id": "s1", "site": None},
    ],
    plans=[
        {"plan_id": "p1", "start_date": dt.date(2026, 9, 1)},
        {"plan_id": "p1", "start_date": dt.date(2026, 9, 1)},
        {"plan_id": None, "start_date": dt.date(2026, 9, 1), "patient_key": None},
        {"plan_id": "p_no_dates", "start_date": None, "updated_at": None, "clinic_timezone": None},
    ],
    pain_checkins=[
        {"checkin_id": "c1", "recorded_at": at("2026-09-02 08:00")},
        {"checkin_id": "c1", "recorded_at": at("2026-09-02 08:00")},
        {"checkin_id": None, "recorded_at": at("2026-09-03 08:00"), "patient_key": None},
        {"checkin_id": "c_no_time", "recorded_at": None},
    ],
    patients=[{"patient_key": "pk_a"}, {"patient_key": "pk_a"}, {"patient_key": None},
              {"patient_key": "pk_no_update", "updated_at": None}],
)

# Identifiers with gaps but no repeats: every uniqueness check passes while the
# not-null checks fail.
MISSING_KEYS = dict(
    sessions=[
        {"session_id": "s1", "started_at": at("2026-09-01 10:00")},
        {"session_id": None, "started_at": at("2026-09-02 10:00")},
        {"session_id": "s2", "patient_key": None, "clinician_id": None, "started_at": at("2026-09-03 10:00")},
        {"session_id": "s3", "started_at": None, "updated_at": None, "clinic_timezone": None},
    ],
    needle_sites=[
        {"session_id": "s1", "site": "upper_trapezius"},
        {"session_id": "s1", "site": "upper_trapezius", "side": "right"},
        {"session_id": None, "site": "upper_trapezius"},
        {"session_id": "s2", "site": None, "side": None},
    ],
    plans=[
        {"plan_id": "p1", "start_date": dt.date(2026, 9, 1)},
        {"plan_id": None, "start_date": dt.date(2026, 9, 1)},
        {"plan_id": "p2", "start_date": None, "updated_at": None, "clinic_timezone": None},
    ],
    pain_checkins=[
        {"checkin_id": "c1", "recorded_at": at("2026-09-02 08:00")},
        {"checkin_id": None, "recorded_at": at("2026-09-03 08:00")},
        {"checkin_id": "c2", "recorded_at": None},
    ],
    patients=[{"patient_key": "pk_a"}, {"patient_key": None}, {"patient_key": "pk_b", "updated_at": None}],
)
