-- Type one night's session rows and give each row its rejection reasons (null: the row loads).
-- started_at keeps both readings until core: an instant when the export gave an offset, else wall-clock time.
-- Each value is parsed once (typed), and the reasons are read from the parsed values.
-- inputs (temp tables and views Python or an earlier file fills; tests/test_sql_inputs.py checks them):
--   incoming_sessions: session_id, patient_id, plan_id, clinic_id, clinician_id, clinician_role, started_at, status,
--     therapies, condition, pain_before, pain_after, aftercare, adverse_event, updated_at, _drop, _file_id, _line
--   patient_keys: patient_id, patient_key
create or replace temp table staged_sessions as
with
first_rows as (
    select _file_id, min(rowid) as first_rowid from incoming_sessions group by _file_id
),

source as (
    -- CSV rows were appended in file order: a row's line is its place in its file + 1 (the header).
    -- Physical line numbers for files with a rejection are settled after staging (blank lines, multi-line fields).
    select
        incoming.* exclude (_line),
        coalesce(incoming._line, incoming.rowid - first_rows.first_rowid + 2) as _line,
    from incoming_sessions as incoming
    inner join first_rows on first_rows._file_id = incoming._file_id
),

typed as (
    select
        source.*,
        ts_instant(started_at) as started_at_instant,
        ts_local(started_at) as started_at_local,
        ts_instant(updated_at) as updated_at_instant,
        ts_local(updated_at) as updated_at_local,
        parse_list(therapies) as therapy_list,
    from source
),

checked as (
    select
        typed.*,
        -- every reason of the row, '; '-separated (concat_ws skips the checks that pass); null: the row loads
        nullif(concat_ws('; ',
            reason_missing('session_id', session_id),
            reason_control('session_id', session_id, false),
            reason_missing('patient_id', patient_id),
            reason_control('patient_id', patient_id, true),
            reason_missing('clinic_id', clinic_id),
            reason_control('clinic_id', clinic_id, false),
            reason_control('plan_id', plan_id, false),
            reason_missing('clinician_id', clinician_id),
            reason_control('clinician_id', clinician_id, false),
            reason_missing('clinician_role', clinician_role),
            reason_enum('clinician_role', clinician_role, seed_clinician_roles()),
            reason_missing('started_at', started_at),
            reason_timestamp_parsed('started_at', started_at, started_at_instant, started_at_local),
            reason_missing('status', status),
            reason_enum('status', status, seed_session_statuses()),
            reason_missing('therapies', therapies),
            reason_list_parsed('therapies', therapies, therapy_list, seed_therapies()),
            reason_enum('condition', condition, seed_conditions()),
            reason_int('pain_before', pain_before, 0, 10),
            reason_int('pain_after', pain_after, 0, 10),
            reason_enum('aftercare', aftercare, seed_aftercare()),
            reason_enum('adverse_event', adverse_event, seed_adverse_events()),
            reason_missing('updated_at', updated_at),
            reason_timestamp_parsed('updated_at', updated_at, updated_at_instant, updated_at_local)
        ), '') as _reasons,
    from typed
),

zoned as (
    select
        checked.*,
        coalesce(clinic_zone.timezone, getvariable('default_timezone')) as clinic_timezone,
    from checked
    left join ops.clinic_timezones as clinic_zone on clinic_zone.clinic_id = trimmed(checked.clinic_id)
),

final as (
    select
        trimmed(zoned.session_id) as session_id,
        patient_keys.patient_key as patient_key,
        trimmed(zoned.plan_id) as plan_id,
        trimmed(zoned.clinic_id) as clinic_id,
        trimmed(zoned.clinician_id) as clinician_id,
        lower(trimmed(zoned.clinician_role)) as clinician_role,
        zoned.started_at_instant as started_at_instant,
        zoned.started_at_local as started_at_local,
        lower(trimmed(zoned.status)) as status,
        zoned.therapy_list as therapies,
        lower(trimmed(zoned.condition)) as condition,
        try_cast(trimmed(zoned.pain_before) as integer) as pain_before,
        try_cast(trimmed(zoned.pain_after) as integer) as pain_after,
        lower(trimmed(zoned.aftercare)) as aftercare,
        lower(trimmed(zoned.adverse_event)) as adverse_event,
        coalesce(zoned.updated_at_instant, timezone(zoned.clinic_timezone, zoned.updated_at_local)) as updated_at,
        zoned._drop as _drop,
        zoned._file_id as _file_id,
        zoned._line as _line,
        zoned._reasons as _reasons,
        case when zoned._reasons is not null then to_json(struct_pack(
            session_id := zoned.session_id,
            patient_key := patient_keys.patient_key,
            plan_id := zoned.plan_id,
            clinic_id := zoned.clinic_id,
            clinician_id := zoned.clinician_id,
            clinician_role := zoned.clinician_role,
            started_at := zoned.started_at,
            status := zoned.status,
            therapies := zoned.therapies,
            condition := zoned.condition,
            pain_before := zoned.pain_before,
            pain_after := zoned.pain_after,
            aftercare := zoned.aftercare,
            adverse_event := zoned.adverse_event,
            updated_at := zoned.updated_at
        )) end as _record,
    from zoned
    left join patient_keys on patient_keys.patient_id = trimmed(zoned.patient_id)
)

select * from final
