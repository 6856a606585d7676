-- core.pain_checkins: one row per check-in; a naive recorded_at is read in the zone of the patient's latest plan.
create or replace table core.pain_checkins as
with
source as (
    select * from raw.pain_checkins
),

zoned as (
    select
        source.*,
        coalesce(patient_zone.clinic_timezone, getvariable('default_timezone')) as patient_timezone,
    from source
    left join raw.patient_timezones as patient_zone on patient_zone.patient_key = source.patient_key
),

final as (
    select
        checkin_id,
        patient_key,
        coalesce(recorded_at_instant, timezone(patient_timezone, recorded_at_local)) as recorded_at,
        pain,
        channel,
    from zoned
)

select * from final
order by patient_key, recorded_at, checkin_id
