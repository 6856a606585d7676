-- core.plans: one row per plan, latest version, with its clinic's time zone.
create or replace table core.plans as
with
source as (
    select * from raw.plans
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
        source.status,
        source.updated_at,
        coalesce(clinic_zone.timezone, getvariable('default_timezone')) as clinic_timezone,
    from source
    left join ops.clinic_timezones as clinic_zone on clinic_zone.clinic_id = source.clinic_id
)

select * from final
order by plan_id
