-- The rows GX suite `core_patients` validates: one per patient, the columns the suite reads.
-- The batch (validation/validate.py sets the variables; unset means every row): every patient on a full
-- validation, the patients the night wrote (changed_in_run) on a night. rows_with_patient_key counts each
-- batch key over the whole table, so a key the night repeats from an earlier night's row is caught.
with

patients as (
    select * from core.patients
),

batch as (
    select *
    from patients
    where coalesce(getvariable('validation_full'), true)
        or patients.changed_in_run = getvariable('validation_run')
),

key_rows as (
    select
        patient_key,
        count(*) as rows_with_patient_key,
    from patients
    where patient_key in (select patient_key from batch)
    group by patient_key
),

final as (
    select
        batch.patient_key,
        batch.sex,
        batch.updated_at,
        key_rows.rows_with_patient_key,
    from batch
    left join key_rows on key_rows.patient_key = batch.patient_key
)

select * from final
