-- The night's valid plans rows, one per plan_id: the version that would win among them.
-- The winner's rowid per plan_id by arg_max (a grouping), not a row_number() window: a window sorts every row.
-- (_file_id, _line) is unique, so there are no ties.
-- inputs (temp tables and views Python or an earlier file fills; tests/test_sql_inputs.py checks them):
--   staged_plans: plan_id, patient_key, clinic_id, start_date, planned_weeks, planned_sessions, pcp_cleared, chronicity, status,
--     updated_at, _drop, _file_id, _line, _reasons, _record
create or replace temp view latest_incoming_plans as
select * exclude (_reasons, _record, _line)
from staged_plans
semi join (
    select arg_max(rowid, (updated_at, _drop, _file_id, _line)) as winner
    from staged_plans
    where _reasons is null
    group by plan_id
) as winners on winners.winner = staged_plans.rowid
