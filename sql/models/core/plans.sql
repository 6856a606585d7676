-- core.plans rows: one per plan, latest version, with its clinic's time zone.
-- The rows of the raw versions loaded after file getvariable('core_since_file_id') (0: every row).
with
source as (
    select * from raw.plans
    where _file_id > getvariable('core_since_file_id')
),

final as (
    select
        source.plan_id,
        source.patient_key,
        source.clinic_id,
        source.start_date,
        source.planned_weeks,
        source.planned_sessions,
        source.pcp_cleared,
        source.chronicity,
        source.status,
        source.updated_at,
        coalesce(clinic_zone.timezone, getvariable('default_timezone')) as clinic_timezone,
        getvariable('core_run_id')::integer as changed_in_run,
    from source
    left join ops.clinic_timezones as clinic_zone on clinic_zone.clinic_id = source.clinic_id
)

select * from final
