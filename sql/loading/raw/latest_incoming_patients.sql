-- The night's valid patients rows, one per patient_key: the version that would win among them.
-- The winner's rowid per patient_key by arg_max (a grouping), not a row_number() window: a window sorts every row.
-- (_file_id, _line) is unique, so there are no ties.
-- inputs (temp tables and views Python or an earlier file fills; tests/test_sql_inputs.py checks them):
--   staged_patients: patient_key, sex, age_band, updated_at, _drop, _file_id, _line, _reasons, _record
create or replace temp view latest_incoming_patients as
select * exclude (_reasons, _record, _line)
from staged_patients
semi join (
    select arg_max(rowid, (updated_at, _drop, _file_id, _line)) as winner
    from staged_patients
    where _reasons is null
    group by patient_key
) as winners on winners.winner = staged_patients.rowid
