-- The rows GX suite `core_patients` validates: one per patient, the columns the suite reads.
with

patients as (
    select * from core.patients
),

final as (
    select
        patient_key,
        sex,
        updated_at,
    from patients
)

select * from final
