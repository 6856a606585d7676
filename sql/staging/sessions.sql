-- Type one night's session rows and give each row its rejection reasons (an empty list: the row loads).
-- started_at keeps both readings until core: an instant when the export gave an offset, else wall-clock time.
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

zoned as (
    select
        source.*,
        coalesce(clinic_zone.timezone, getvariable('default_timezone')) as clinic_timezone,
    from source
    left join ops.clinic_timezones as clinic_zone on clinic_zone.clinic_id = trim(source.clinic_id)
),

checked as (
    select
        zoned.*,
        list_filter([
            reason_missing('session_id', session_id),
            reason_missing('patient_id', patient_id),
            reason_missing('clinic_id', clinic_id),
            reason_missing('clinician_id', clinician_id),
            reason_missing('clinician_role', clinician_role),
            reason_enum('clinician_role', clinician_role,
                ['physical_therapist', 'chiropractor', 'acupuncturist', 'nurse', 'physician', 'other']),
            reason_missing('started_at', started_at),
            reason_timestamp('started_at', started_at),
            reason_missing('status', status),
            reason_enum('status', status, ['completed', 'cancelled', 'no_show']),
            reason_missing('therapies', therapies),
            reason_list('therapies', therapies, [
                'dry_needling', 'manual_therapy', 'therapeutic_exercise', 'electrical_stimulation',
                'ultrasound', 'heat_ice', 'spinal_injection', 'other',
            ]),
            reason_enum('condition', condition, [
                'low_back_pain', 'neck_pain', 'cervicogenic_headache', 'carpal_tunnel_syndrome',
                'shoulder_pain', 'other',
            ]),
            reason_int('pain_before', pain_before, 0, 10),
            reason_int('pain_after', pain_after, 0, 10),
            reason_enum('aftercare', aftercare, ['ice', 'heat', 'none']),
            reason_enum('adverse_event', adverse_event,
                ['none', 'soreness', 'bruising', 'swelling', 'bleeding', 'fainting', 'other']),
            reason_missing('updated_at', updated_at),
            reason_timestamp('updated_at', updated_at),
        ], lambda reason: reason is not null) as _reasons,
    from zoned
),

final as (
    select
        trim(checked.session_id) as session_id,
        patient_keys.patient_key as patient_key,
        trim(checked.plan_id) as plan_id,
        trim(checked.clinic_id) as clinic_id,
        trim(checked.clinician_id) as clinician_id,
        lower(trim(checked.clinician_role)) as clinician_role,
        ts_instant(checked.started_at) as started_at_instant,
        ts_local(checked.started_at) as started_at_local,
        lower(trim(checked.status)) as status,
        parse_list(checked.therapies) as therapies,
        lower(trim(checked.condition)) as condition,
        try_cast(trim(checked.pain_before) as integer) as pain_before,
        try_cast(trim(checked.pain_after) as integer) as pain_after,
        lower(trim(checked.aftercare)) as aftercare,
        lower(trim(checked.adverse_event)) as adverse_event,
        to_instant(checked.updated_at, checked.clinic_timezone) as updated_at,
        checked._drop as _drop,
        checked._file_id as _file_id,
        checked._line as _line,
        checked._reasons as _reasons,
        case when len(checked._reasons) > 0 then to_json(struct_pack(
            session_id := checked.session_id,
            patient_key := patient_keys.patient_key,
            plan_id := checked.plan_id,
            clinic_id := checked.clinic_id,
            clinician_id := checked.clinician_id,
            clinician_role := checked.clinician_role,
            started_at := checked.started_at,
            status := checked.status,
            therapies := checked.therapies,
            condition := checked.condition,
            pain_before := checked.pain_before,
            pain_after := checked.pain_after,
            aftercare := checked.aftercare,
            adverse_event := checked.adverse_event,
            updated_at := checked.updated_at
        )) end as _record,
    from checked
    left join patient_keys on patient_keys.patient_id = trim(checked.patient_id)
)

select * from final
