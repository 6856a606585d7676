-- R1 re-treatment flags per clinic over the last 30 days before the published run's as-of date (the clinic's
-- local dates as_of - 30 to as_of - 1), beside the needling sessions of the same days, so a flag count reads
-- against the clinic's volume. Every clinic with a needling session in the window is listed, flagged or not.
create or replace view views.retreatment_flags_last_30_days as
with
as_of as (
    select max(runs.as_of) as as_of from ops.runs as runs where runs.status = 'published'
),

needling as (
    select
        sessions.clinic_id as clinic_id,
        sessions.session_id as session_id,
    from core.sessions as sessions, as_of
    where
        sessions.status = 'completed'
        and list_contains(sessions.therapies, 'dry_needling')
        and timezone(sessions.clinic_timezone, sessions.started_at)::date >= as_of.as_of - 30
        and timezone(sessions.clinic_timezone, sessions.started_at)::date < as_of.as_of
),

flags as (
    select
        retreatment_flags.session_id as session_id,
        count(*) as flags,
    from quality.retreatment_flags as retreatment_flags
    group by retreatment_flags.session_id
),

final as (
    select
        needling.clinic_id as clinic_id,
        any_value(as_of.as_of) - 30 as first_day,
        any_value(as_of.as_of) - 1 as last_day,
        count(*) as needling_sessions,
        count(flags.session_id) as sessions_flagged,
        coalesce(sum(flags.flags), 0) as flags,
        round(100.0 * count(flags.session_id) / count(*), 1) as sessions_flagged_per_100,
    from needling
    cross join as_of
    left join flags on flags.session_id = needling.session_id
    group by needling.clinic_id
)

select * from final
order by clinic_id
