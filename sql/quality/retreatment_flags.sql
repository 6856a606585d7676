-- R1 flags: one row per session and spot needled again too soon. The test is
-- the `retreated_too_soon` column of retreatment_checks, the same column the
-- GX suite `retreatment` validates.
create or replace table quality.retreatment_flags as

with

checks as (
    select * from quality.retreatment_checks
),

final as (
    select
        session_id,
        previous_session_id,
        site,
        side,
        hours_since_previous,
        clinic_id,
        clinician_id,
        started_at,
        previous_started_at,
    from checks
    where retreated_too_soon
)

select * from final
