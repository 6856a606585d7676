-- Record this night's rows that failed typing: file, line, every reason, and the row as given
-- (patient_id replaced by its key; names, phones, dates of birth and postal codes never included).
-- inputs (temp tables and views Python or an earlier file fills; tests/test_sql_inputs.py checks them):
--   incoming_files: file_id, path
--   staged_needle_sites: session_id, site, side, needles, _drop, _file_id, _line, _reasons, _record
--   staged_pain_checkins: checkin_id, patient_key, recorded_at_instant, recorded_at_local, pain, channel, _drop,
--     _file_id, _line, _reasons, _record
--   staged_patients: patient_key, sex, age_band, updated_at, _drop, _file_id, _line, _reasons, _record
--   staged_plans: plan_id, patient_key, clinic_id, start_date, planned_weeks, planned_sessions, pcp_cleared, chronicity, status,
--     updated_at, _drop, _file_id, _line, _reasons, _record
--   staged_sessions: session_id, patient_key, plan_id, clinic_id, clinician_id, clinician_role, started_at_instant,
--     started_at_local, status, therapies, condition, pain_before, pain_after, aftercare, adverse_event, updated_at,
--     _drop, _file_id, _line, _reasons, _record
insert into quality.rejected_rows
with
source as (
    select 'plans' as entity, _file_id, _line, _reasons, _record from staged_plans where _reasons is not null
    union all
    select 'sessions', _file_id, _line, _reasons, _record from staged_sessions where _reasons is not null
    union all
    select 'needle_sites', _file_id, _line, _reasons, _record from staged_needle_sites where _reasons is not null
    union all
    select 'pain_checkins', _file_id, _line, _reasons, _record from staged_pain_checkins where _reasons is not null
    union all
    select 'patients', _file_id, _line, _reasons, _record from staged_patients where _reasons is not null
),

final as (
    select
        getvariable('run_id')::integer as run_id,
        incoming_files.path as source_file,
        source._line as line_number,
        source.entity as entity,
        source._reasons as reason,
        source._record as record,
    from source
    inner join incoming_files on incoming_files.file_id = source._file_id
)

select * from final
order by source_file, line_number
