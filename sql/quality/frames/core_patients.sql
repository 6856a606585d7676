-- The rows GX suite `core_patients` validates: one per patient.
with

patients as (
    select * from core.patients
),

final as (
    select
        patient_key,
        sex,
        age_band,
        updated_at,
    from patients
)

select * from final
