-- core.pain_checkins rows: one per check-in; a naive recorded_at is read in the zone of the patient's latest plan.
-- The rows of the raw versions loaded after file getvariable('core_since_file_id') (0: every row), and every
-- check-in of the patients in core_zone_patients (patients whose latest plan may have changed: their zone may
-- have too).
-- inputs (temp tables and views Python or an earlier file fills; tests/test_sql_inputs.py checks them):
--   core_zone_patients: patient_key
with
source as (
    select * from raw.pain_checkins
    where _file_id > getvariable('core_since_file_id')
        or patient_key in (select patient_key from core_zone_patients)
),

zoned as (
    select
        source.*,
        coalesce(patient_zone.clinic_timezone, getvariable('default_timezone')) as patient_timezone,
    from source
    left join raw.patient_timezones as patient_zone on patient_zone.patient_key = source.patient_key
),

final as (
    select
        checkin_id,
        patient_key,
        coalesce(recorded_at_instant, timezone(patient_timezone, recorded_at_local)) as recorded_at,
        pain,
        channel,
        getvariable('core_run_id')::integer as changed_in_run,
    from zoned
)

select * from final
