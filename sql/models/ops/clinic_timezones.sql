-- The time zone each clinic's naive timestamps are read in, from the settings of the run that built this warehouse.
with
source as (
    select * from settings_clinic_timezones
),

final as (
    select
        clinic_id::varchar as clinic_id,
        timezone::varchar as timezone,
    from source
)

select * from final
order by clinic_id
