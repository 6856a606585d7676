-- The rows GX suite `core_pain_checkins` validates: one per check-in, with
-- whether its patient is known and whether it was recorded by the as-of date,
-- in the zone of the patient's latest plan's clinic, else the default zone
-- (exports.md).
-- The batch (validation/validate.py sets the variables; unset means every row): every check-in on a full
-- validation; on a night, the check-ins the night wrote (changed_in_run) and those of the patients whose
-- patient row or a plan of theirs it wrote (patient_is_known reads the patient, the local date the latest
-- plan's zone). rows_with_checkin_id counts each batch key over the whole table, so a key the night repeats
-- from an earlier night's row is caught though that row is not in the batch.
with

checkins as (
    select * from core.pain_checkins
),

patients as (
    select * from core.patients
),

known_patients as (
    -- distinct, so a repeated patient (core_patients reports that) repeats no row here
    select distinct
        patient_key,
    from patients
),

plans as (
    select * from core.plans
),

night_patients as (
    select patient_key from patients where changed_in_run = getvariable('validation_run')
    union
    select patient_key from plans where changed_in_run = getvariable('validation_run')
),

batch as (
    select *
    from checkins
    where coalesce(getvariable('validation_full'), true)
        or checkins.changed_in_run = getvariable('validation_run')
        or checkins.patient_key in (select patient_key from night_patients)
),

key_rows as (
    select
        checkin_id,
        count(*) as rows_with_checkin_id,
    from checkins
    where checkin_id in (select checkin_id from batch)
    group by checkin_id
),

patient_zones as (
    -- the latest plan as raw.patient_timezones (which the loader reads check-ins with) picks it:
    -- start_date, then updated_at, then plan_id
    select
        patient_key,
        arg_max(clinic_timezone, (start_date, updated_at, plan_id)) as timezone,
    from plans
    where patient_key in (select patient_key from batch)
    group by patient_key
),

final as (
    select
        batch.checkin_id,
        batch.patient_key,
        batch.recorded_at,
        batch.pain,
        batch.channel,
        key_rows.rows_with_checkin_id,
        known_patients.patient_key is not null as patient_is_known,
        -- The local date is cast(timezone(zone, recorded_at) as date). That conversion is most
        -- of this query's time, and no zone is a day or more from UTC, so an instant at least
        -- a day before or after the as-of date in UTC is decided without it.
        case
            when batch.recorded_at < getvariable('as_of') then true
            when batch.recorded_at >= getvariable('as_of') + 2 then false
            else cast(timezone(coalesce(patient_zones.timezone, getvariable('default_timezone')), batch.recorded_at) as date)
                <= getvariable('as_of')
        end as recorded_by_as_of,
    from batch
    left join known_patients on known_patients.patient_key = batch.patient_key
    left join patient_zones on patient_zones.patient_key = batch.patient_key
    left join key_rows on key_rows.checkin_id = batch.checkin_id
)

select * from final
