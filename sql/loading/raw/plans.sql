-- Merge one night's valid plan rows into raw.plans: the latest updated_at wins; on a tie, the later drop
-- (then the later-loaded file, then the later line of the same file).
-- inputs (temp tables and views Python or an earlier file fills; tests/test_sql_inputs.py checks them):
--   latest_incoming_plans: plan_id, patient_key, clinic_id, start_date, planned_weeks, planned_sessions,
--     pcp_cleared, chronicity, status, updated_at, _drop, _file_id
merge into raw.plans as target
using latest_incoming_plans as incoming
on target.plan_id = incoming.plan_id
when matched
    and (incoming.updated_at, incoming._drop, incoming._file_id) > (target.updated_at, target._drop, target._file_id)
    then update set *
when not matched then insert *
