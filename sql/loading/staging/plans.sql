-- Type one night's plan rows and give each row its rejection reasons (null: the row loads).
-- inputs (temp tables and views Python or an earlier file fills; tests/test_sql_inputs.py checks them):
--   incoming_plans: plan_id, patient_id, clinic_id, start_date, planned_weeks, planned_sessions, pcp_cleared, chronicity,
--     status, updated_at, _drop, _file_id, _line
--   patient_keys: patient_id, patient_key
create or replace temp table staged_plans as
with
first_rows as (
    select _file_id, min(rowid) as first_rowid from incoming_plans group by _file_id
),

source as (
    -- CSV rows were appended in file order: a row's line is its place in its file + 1 (the header).
    -- Physical line numbers for files with a rejection are settled after staging (blank lines, multi-line fields).
    select
        incoming.* exclude (_line),
        coalesce(incoming._line, incoming.rowid - first_rows.first_rowid + 2) as _line,
    from incoming_plans as incoming
    inner join first_rows on first_rows._file_id = incoming._file_id
),

zoned as (
    select
        source.*,
        coalesce(clinic_zone.timezone, getvariable('default_timezone')) as clinic_timezone,
    from source
    left join ops.clinic_timezones as clinic_zone on clinic_zone.clinic_id = trimmed(source.clinic_id)
),

typed as (
    select
        zoned.*,
        ts_instant(updated_at) as updated_at_instant,
        ts_local(updated_at) as updated_at_local,
    from zoned
),

checked as (
    select
        typed.*,
        -- every reason of the row, '; '-separated (concat_ws skips the checks that pass); null: the row loads
        nullif(concat_ws('; ',
            reason_missing('plan_id', plan_id),
            reason_control('plan_id', plan_id, false),
            reason_missing('patient_id', patient_id),
            reason_control('patient_id', patient_id, true),
            reason_missing('clinic_id', clinic_id),
            reason_control('clinic_id', clinic_id, false),
            reason_missing('start_date', start_date),
            reason_date('start_date', start_date, false),
            reason_int('planned_weeks', planned_weeks, 1, 52),
            reason_int('planned_sessions', planned_sessions, 1, null),
            reason_bool('pcp_cleared', pcp_cleared),
            -- optional, and absent from older exports (the loader then reads it as null)
            reason_enum('chronicity', chronicity, seed_chronicity()),
            reason_missing('status', status),
            reason_enum('status', status, seed_plan_statuses()),
            reason_missing('updated_at', updated_at),
            reason_timestamp_parsed('updated_at', updated_at, updated_at_instant, updated_at_local)
        ), '') as _reasons,
    from typed
),

final as (
    select
        trimmed(checked.plan_id) as plan_id,
        patient_keys.patient_key as patient_key,
        trimmed(checked.clinic_id) as clinic_id,
        try_cast(trimmed(checked.start_date) as date) as start_date,
        try_cast(trimmed(checked.planned_weeks) as integer) as planned_weeks,
        try_cast(trimmed(checked.planned_sessions) as integer) as planned_sessions,
        parse_bool(checked.pcp_cleared) as pcp_cleared,
        lower(trimmed(checked.chronicity)) as chronicity,
        lower(trimmed(checked.status)) as status,
        coalesce(checked.updated_at_instant, timezone(checked.clinic_timezone, checked.updated_at_local)) as updated_at,
        checked._drop as _drop,
        checked._file_id as _file_id,
        checked._line as _line,
        checked._reasons as _reasons,
        case when checked._reasons is not null then to_json(struct_pack(
            plan_id := checked.plan_id,
            patient_key := patient_keys.patient_key,
            clinic_id := checked.clinic_id,
            start_date := checked.start_date,
            planned_weeks := checked.planned_weeks,
            planned_sessions := checked.planned_sessions,
            pcp_cleared := checked.pcp_cleared,
            chronicity := checked.chronicity,
            status := checked.status,
            updated_at := checked.updated_at
        )) end as _record,
    from checked
    left join patient_keys on patient_keys.patient_id = trimmed(checked.patient_id)
)

select * from final
