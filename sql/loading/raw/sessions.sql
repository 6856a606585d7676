-- Merge one night's valid session rows into raw.sessions: the latest updated_at wins; on a tie, the later drop
-- (then the later-loaded file, then the later line of the same file).
-- inputs (temp tables and views Python or an earlier file fills; tests/test_sql_inputs.py checks them):
--   latest_incoming_sessions: session_id, patient_key, plan_id, clinic_id, clinician_id, clinician_role,
--     started_at_instant, started_at_local, status, therapies, condition, pain_before, pain_after, aftercare,
--     adverse_event, updated_at, _drop, _file_id
merge into raw.sessions as target
using latest_incoming_sessions as incoming
on target.session_id = incoming.session_id
when matched
    and (incoming.updated_at, incoming._drop, incoming._file_id) > (target.updated_at, target._drop, target._file_id)
    then update set *
when not matched then insert *
