-- Type one night's patient rows and give each row its rejection reasons (null: the row loads).
-- Only sex and an age band survive: name, phone, postal code and date of birth are read and dropped here,
-- and a rejected row's record and reasons never echo them.
-- inputs (temp tables and views Python or an earlier file fills; tests/test_sql_inputs.py checks them):
--   incoming_patients: patient_id, full_name, date_of_birth, sex, phone, postal_code, updated_at, _drop, _file_id,
--     _line
--   patient_keys: patient_id, patient_key
create or replace temp table staged_patients as
with
first_rows as (
    select _file_id, min(rowid) as first_rowid from incoming_patients group by _file_id
),

source as (
    -- CSV rows were appended in file order: a row's line is its place in its file + 1 (the header).
    -- Physical line numbers for files with a rejection are settled after staging (blank lines, multi-line fields).
    select
        incoming.* exclude (_line),
        coalesce(incoming._line, incoming.rowid - first_rows.first_rowid + 2) as _line,
    from incoming_patients as incoming
    inner join first_rows on first_rows._file_id = incoming._file_id
),

keyed as (
    select
        source.*,
        patient_keys.patient_key as patient_key,
    from source
    left join patient_keys on patient_keys.patient_id = trimmed(source.patient_id)
),

zoned as (
    select
        keyed.*,
        coalesce(latest_plan_zone.clinic_timezone, getvariable('default_timezone')) as patient_timezone,
    from keyed
    left join raw.patient_timezones as latest_plan_zone on latest_plan_zone.patient_key = keyed.patient_key
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
            reason_missing('patient_id', patient_id),
            reason_control('patient_id', patient_id, true),
            reason_date('date_of_birth', date_of_birth, true),
            reason_enum('sex', sex, seed_sexes()),
            reason_missing('updated_at', updated_at),
            reason_timestamp_parsed('updated_at', updated_at, updated_at_instant, updated_at_local)
        ), '') as _reasons,
    from typed
),

final as (
    select
        patient_key,
        lower(trimmed(sex)) as sex,
        age_band(try_cast(trimmed(date_of_birth) as date), getvariable('as_of')) as age_band,
        coalesce(updated_at_instant, timezone(patient_timezone, updated_at_local)) as updated_at,
        _drop,
        _file_id,
        _line,
        _reasons,
        case when _reasons is not null then to_json(struct_pack(
            patient_key := patient_key,
            sex := sex,
            updated_at := updated_at
        )) end as _record,
    from checked
)

select * from final
