-- core.patients: one row per patient, only sex and age band.
create or replace table core.patients as
with
source as (
    select * from raw.patients
),

final as (
    select
        patient_key,
        sex,
        age_band,
        updated_at,
    from source
)

select * from final
order by patient_key
