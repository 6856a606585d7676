-- The zone of each patient's latest plan's clinic (latest by start_date, then updated_at, then plan_id):
-- check-ins and patients carry no clinic, so their naive timestamps are read in it (exports.md).
-- materialised: view
with
source as (
    select * from raw.plans
),

latest_plan as (
    select patient_key, clinic_id
    from source
    qualify row_number() over (
        partition by patient_key order by start_date desc, updated_at desc, plan_id desc
    ) = 1
),

final as (
    select
        latest_plan.patient_key as patient_key,
        coalesce(clinic_zone.timezone, getvariable('default_timezone')) as clinic_timezone,
    from latest_plan
    left join ops.clinic_timezones as clinic_zone on clinic_zone.clinic_id = latest_plan.clinic_id
)

select * from final
