-- The rows GX suite `core_plans` validates: one per plan, with whether its
-- patient is known.
-- The batch (validation/validate.py sets the variables; unset means every row): every plan on a full
-- validation; on a night, the plans the night wrote (changed_in_run) and the plans of the patients it wrote
-- (patient_is_known reads the patient). rows_with_plan_id counts each batch key over the whole table, so a
-- key the night repeats from an earlier night's row is caught though that row is not in the batch.
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

night_patients as (
    select distinct
        patient_key,
    from patients
    where changed_in_run = getvariable('validation_run')
),

batch as (
    select *
    from plans
    where coalesce(getvariable('validation_full'), true)
        or plans.changed_in_run = getvariable('validation_run')
        or plans.patient_key in (select patient_key from night_patients)
),

key_rows as (
    select
        plan_id,
        count(*) as rows_with_plan_id,
    from plans
    where plan_id in (select plan_id from batch)
    group by plan_id
),

final as (
    select
        batch.plan_id,
        batch.patient_key,
        batch.clinic_id,
        batch.start_date,
        batch.planned_weeks,
        batch.planned_sessions,
        batch.chronicity,
        batch.status,
        batch.updated_at,
        batch.clinic_timezone,
        key_rows.rows_with_plan_id,
        known_patients.patient_key is not null as patient_is_known,
    from batch
    left join known_patients on known_patients.patient_key = batch.patient_key
    left join key_rows on key_rows.plan_id = batch.plan_id
)

select * from final
