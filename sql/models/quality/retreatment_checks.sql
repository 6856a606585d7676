-- R1, the one derived query: every spot of every needling session with the
-- spot's previous needling session. retreatment_flags and the GX suite
-- `retreatment` both read `retreated_too_soon`, so they cannot disagree.
-- The rows of every patient (getvariable('r1_all')), or of the patients in r1_patients only: a spot is a
-- patient's, so build_quality_tables can replace one patient's rows without touching the others'.
-- inputs (temp tables and views Python or an earlier file fills; tests/test_sql_inputs.py checks them):
--   r1_patients: patient_key

with

sessions as (
    select * from core.sessions
),

needle_sites as (
    select * from core.needle_sites
),

needling_sessions as (
    -- rules.md: only completed sessions count; a needling session lists dry_needling
    select
        session_id,
        patient_key,
        started_at,
    from sessions
    where status = 'completed'
        and list_contains(therapies, 'dry_needling')
        and started_at is not null
        and patient_key is not null
        and (getvariable('r1_all') or patient_key in (select patient_key from r1_patients))
),

spot_sessions as (
    select
        needling_sessions.session_id,
        needling_sessions.patient_key,
        needle_sites.site,
        needle_sites.side,
        needling_sessions.started_at,
    from needling_sessions
    inner join needle_sites on needle_sites.session_id = needling_sessions.session_id
),

with_previous as (
    -- a spot is (patient, site, side); ties in started_at are ordered by session_id
    select
        *,
        lag(session_id) over spot_history as previous_session_id,
        lag(started_at) over spot_history as previous_started_at,
    from spot_sessions
    window spot_history as (
        partition by patient_key, site, side
        order by started_at, session_id
    )
),

final as (
    select
        session_id,
        site,
        side,
        previous_session_id,
        -- elapsed time between instants (microsecond epochs), so DST changes do not shift it
        (epoch_us(started_at) - epoch_us(previous_started_at)) / 3600e6 as hours_since_previous,
        -- a previous row of the same session is a duplicated site row (the critical
        -- uniqueness expectation on core.needle_sites stops that run), not a re-treatment
        coalesce(
            previous_session_id <> session_id
            and hours_since_previous >= 0
            and hours_since_previous < getvariable('retreatment_window_hours'),
            false
        ) as retreated_too_soon,
    from with_previous
)

select * from final
