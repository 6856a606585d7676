-- The rows GX suite `core_pain_checkins` validates: one per check-in, with
-- whether its patient is known and whether it was recorded by the as-of date,
-- in the zone of the patient's latest plan's clinic, else the default zone
-- (exports.md).
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

patient_zones as (
    -- the latest plan as raw.patient_timezones (which the loader reads check-ins with) picks it:
    -- start_date, then updated_at, then plan_id
    select
        patient_key,
        arg_max(clinic_timezone, (start_date, updated_at, plan_id)) as timezone,
    from plans
    group by patient_key
),

final as (
    select
        checkins.checkin_id,
        checkins.patient_key,
        checkins.recorded_at,
        checkins.pain,
        checkins.channel,
        known_patients.patient_key is not null as patient_is_known,
        -- The local date is cast(timezone(zone, recorded_at) as date). That conversion is most
        -- of this query's time, and no zone is a day or more from UTC, so an instant at least
        -- a day before or after the as-of date in UTC is decided without it.
        case
            when checkins.recorded_at < getvariable('as_of') then true
            when checkins.recorded_at >= getvariable('as_of') + 2 then false
            else cast(timezone(coalesce(patient_zones.timezone, getvariable('default_timezone')), checkins.recorded_at) as date)
                <= getvariable('as_of')
        end as recorded_by_as_of,
    from checkins
    left join known_patients on known_patients.patient_key = checkins.patient_key
    left join patient_zones on patient_zones.patient_key = checkins.patient_key
)

select * from final
