-- The night's valid sessions rows, one per session_id: the version that would win among them.
-- The winner's rowid per session_id by arg_max (a grouping), not a row_number() window: a window sorts every row.
-- (_file_id, _line) is unique, so there are no ties.
-- inputs (temp tables and views Python or an earlier file fills; tests/test_sql_inputs.py checks them):
--   staged_sessions: session_id, patient_key, plan_id, clinic_id, clinician_id, clinician_role, started_at_instant,
--     started_at_local, status, therapies, condition, pain_before, pain_after, aftercare, adverse_event, updated_at,
--     _drop, _file_id, _line, _reasons, _record
create or replace temp view latest_incoming_sessions as
select * exclude (_reasons, _record, _line)
from staged_sessions
semi join (
    select arg_max(rowid, (updated_at, _drop, _file_id, _line)) as winner
    from staged_sessions
    where _reasons is null
    group by session_id
) as winners on winners.winner = staged_sessions.rowid
