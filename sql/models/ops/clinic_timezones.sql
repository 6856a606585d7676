-- The time zone each clinic's naive timestamps are read in, from the settings of the run that built this warehouse.
-- inputs (temp tables and views Python or an earlier file fills; tests/test_sql_inputs.py checks them):
--   settings_clinic_timezones: clinic_id, timezone
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
