-- The rows GX suite `retreatment` validates (R1): every spot of every needling
-- session, with the same `retreated_too_soon` that quality.retreatment_checks keeps.
-- The batch (validation/validate.py sets the variables; unset means every row): every row on a full
-- validation; on a night, the rows of the patients one of whose sessions or its needle sites the night wrote:
-- the rows an incremental R1 build replaces (sql/temp/r1_patients.sql). That build also replaces the rows of
-- a patient who lost a session tonight (moved to another patient, or no longer needling); those rows can
-- only lose a re-treatment (a spot's gaps only grow), so leaving them to the full validation misses no flag.
with

checks as (
    select * from quality.retreatment_checks
),

sessions as (
    select * from core.sessions
),

written as (
    select session_id from sessions where changed_in_run = getvariable('validation_run')
    union
    select session_id from core.needle_sites where changed_in_run = getvariable('validation_run')
),

night_patients as (
    select distinct
        sessions.patient_key,
    from sessions
    semi join written on written.session_id = sessions.session_id
),

night_sessions as (
    select
        session_id,
    from sessions
    where patient_key in (select patient_key from night_patients)
),

batch as (
    select *
    from checks
    where coalesce(getvariable('validation_full'), true)
        or checks.session_id in (select session_id from night_sessions)
),

final as (
    select
        retreated_too_soon,
    from batch
)

select * from final
