-- The rows GX suite `core_plans` validates: one per plan, with whether its
-- patient is known.
with

plans as (
    select * from core.plans
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

final as (
    select
        plans.plan_id,
        plans.patient_key,
        plans.clinic_id,
        plans.start_date,
        plans.planned_weeks,
        plans.planned_sessions,
        plans.chronicity,
        plans.status,
        plans.updated_at,
        plans.clinic_timezone,
        known_patients.patient_key is not null as patient_is_known,
    from plans
    left join known_patients on known_patients.patient_key = plans.patient_key
)

select * from final
