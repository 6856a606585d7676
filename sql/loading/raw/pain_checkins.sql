-- Merge one night's valid check-in rows into raw.pain_checkins: check-ins carry no updated_at, so the later drop
-- wins (then the later-loaded file, then the later line of the same file).
-- inputs (temp tables and views Python or an earlier file fills; tests/test_sql_inputs.py checks them):
--   latest_incoming_pain_checkins: checkin_id, patient_key, recorded_at_instant, recorded_at_local, pain, channel,
--     _drop, _file_id
merge into raw.pain_checkins as target
using latest_incoming_pain_checkins as incoming
on target.checkin_id = incoming.checkin_id
when matched and (incoming._drop, incoming._file_id) > (target._drop, target._file_id) then update set *
when not matched then insert *
