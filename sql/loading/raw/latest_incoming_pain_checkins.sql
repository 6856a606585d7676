-- The night's valid pain checkins rows, one per checkin_id: the version that would win among them.
-- The winner's rowid per checkin_id by arg_max (a grouping), not a row_number() window: a window sorts every row.
-- (_file_id, _line) is unique, so there are no ties.
-- inputs (temp tables and views Python or an earlier file fills; tests/test_sql_inputs.py checks them):
--   staged_pain_checkins: checkin_id, patient_key, recorded_at_instant, recorded_at_local, pain, channel, _drop,
--     _file_id, _line, _reasons, _record
create or replace temp view latest_incoming_pain_checkins as
select * exclude (_reasons, _record, _line)
from staged_pain_checkins
semi join (
    select arg_max(rowid, (_drop, _file_id, _line)) as winner
    from staged_pain_checkins
    where _reasons is null
    group by checkin_id
) as winners on winners.winner = staged_pain_checkins.rowid
