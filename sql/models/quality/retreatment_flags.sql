-- R1 flags: one row per session and spot needled again too soon. The test is
-- the `retreated_too_soon` column of retreatment_checks, the same column the
-- GX suite `retreatment` validates. No patient_key: the report lists no patients.
-- The flags of every session (getvariable('r1_all')), or of the sessions in r1_sessions only.
-- inputs (temp tables and views Python or an earlier file fills; tests/test_sql_inputs.py checks them):
--   r1_sessions: session_id

with

checks as (
    select * from quality.retreatment_checks
),

sessions as (
    select * from core.sessions
),

final as (
    select
        checks.session_id,
        checks.previous_session_id,
        checks.site,
        checks.side,
        checks.hours_since_previous,
        sessions.clinic_id,
        sessions.clinician_id,
        sessions.started_at,
    from checks
    inner join sessions on sessions.session_id = checks.session_id
    where checks.retreated_too_soon
        and (getvariable('r1_all') or checks.session_id in (select session_id from r1_sessions))
)

select * from final
