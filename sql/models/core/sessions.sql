-- core.sessions rows: one per session, latest version, started_at resolved to an instant.
-- The rows of the raw versions loaded after file getvariable('core_since_file_id') (0: every row); build_core
-- makes the table of them (full build) or puts them in place of the rows with the same session_id.
with
source as (
    select * from raw.sessions
    where _file_id > getvariable('core_since_file_id')
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
        getvariable('core_run_id')::integer as changed_in_run,
    from zoned
)

select * from final
