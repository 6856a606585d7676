-- core.sessions: one row per session, latest version, started_at resolved to an instant.
create or replace table core.sessions as
with
source as (
    select * from raw.sessions
),

zoned as (
    select
        source.*,
        coalesce(clinic_zone.timezone, getvariable('default_timezone')) as clinic_timezone,
    from source
    left join ops.clinic_timezones as clinic_zone on clinic_zone.clinic_id = source.clinic_id
),

final as (
    select
        session_id,
        patient_key,
        plan_id,
        clinic_id,
        clinician_id,
        clinician_role,
        coalesce(started_at_instant, timezone(clinic_timezone, started_at_local)) as started_at,
        status,
        therapies,
        condition,
        pain_before,
        pain_after,
        aftercare,
        adverse_event,
        updated_at,
        clinic_timezone,
    from zoned
)

select * from final
order by started_at, session_id
