-- core.patients rows: one per patient, only sex and age band.
-- The rows of the raw versions loaded after file getvariable('core_since_file_id') (0: every row).
with
source as (
    select * from raw.patients
    where _file_id > getvariable('core_since_file_id')
),

final as (
    select
        patient_key,
        sex,
        age_band,
        updated_at,
        getvariable('core_run_id')::integer as changed_in_run,
    from source
)

select * from final
