-- Merge one night's valid patient rows into raw.patients: the latest updated_at wins; on a tie, the later drop
-- (then the later-loaded file, then the later line of the same file).
-- inputs (temp tables and views Python or an earlier file fills; tests/test_sql_inputs.py checks them):
--   latest_incoming_patients: patient_key, sex, age_band, updated_at, _drop, _file_id
merge into raw.patients as target
using latest_incoming_patients as incoming
on target.patient_key = incoming.patient_key
when matched
    and (incoming.updated_at, incoming._drop, incoming._file_id) > (target.updated_at, target._drop, target._file_id)
    then update set *
when not matched then insert *
