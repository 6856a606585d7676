-- R2: every plan with its completion and every failing reason, in the order
-- rules.md lists them. The GX suite `plan_completion` validates `completion`
-- of this table, so the warehouse and the GX results cannot disagree.

with

plans as (
    select * from core.plans
),

sessions as (
    select * from core.sessions
),

plan_windows as (
    select
        plan_id,
        patient_key,
        clinic_id,
        coalesce(clinic_timezone, getvariable('default_timezone')) as clinic_timezone,
        start_date,
        status,
        planned_sessions,
        -- a plan's own planned_weeks wins over the setting
        coalesce(planned_weeks, getvariable('plan_weeks'))::integer as planned_weeks,
        start_date + 7 * coalesce(planned_weeks, getvariable('plan_weeks'))::integer as window_end,
    from plans
),

completed_sessions as (
    select
        session_id,
        plan_id,
        started_at,
        therapies,
    from sessions
    where status = 'completed'
        and plan_id is not null
),

plan_sessions as (
    select
        plan_windows.plan_id,
        plan_windows.clinic_timezone,
        plan_windows.start_date,
        plan_windows.window_end,
        completed_sessions.session_id,
        completed_sessions.started_at,
        completed_sessions.therapies,
        -- the UTC date; the local date is at most a day from it (zones are within 24 hours of UTC)
        date '1970-01-01' + (epoch_us(completed_sessions.started_at) // 86400000000)::integer as utc_date,
    from plan_windows
    inner join completed_sessions on completed_sessions.plan_id = plan_windows.plan_id
),

window_sessions as (
    -- the window is in local dates of the plan's clinic, not of UTC. Only a session within a day of a
    -- boundary the rule compares with (start, final week, end) needs the zone: elsewhere the UTC date lies on
    -- the same side of every boundary as the local date, and the zone lookup is what costs.
    select
        plan_id,
        session_id,
        case
            when abs(utc_date - start_date) <= 1
                or abs(utc_date - (window_end - 7)) <= 1
                or abs(utc_date - window_end) <= 1
                then cast(timezone(clinic_timezone, started_at) as date)
            else utc_date
        end as local_date,
        list_contains(therapies, 'dry_needling') as is_needling,
        len(list_filter(therapies, lambda therapy: therapy <> 'dry_needling')) > 0 as has_adjunct,
        window_end - 7 as final_week_start,
    from plan_sessions
    where local_date >= start_date
        and local_date < window_end
),

window_summary as (
    select
        plan_id,
        count(distinct session_id) as sessions_in_window,
        bool_or(local_date >= final_week_start) as has_final_week_session,
        bool_or(is_needling) as has_dry_needling,
        bool_or(has_adjunct) as has_adjunct_therapy,
    from window_sessions
    group by plan_id
),

evaluated as (
    select
        plan_windows.*,
        coalesce(window_summary.sessions_in_window, 0)::integer as sessions_in_window,
        case
            when plan_windows.status = 'cancelled' then 'cancelled'
            when plan_windows.status = 'active'
                and getvariable('as_of') < plan_windows.window_end then 'in_progress'
        end as not_evaluated_as,
        list_value(
            case when not coalesce(window_summary.has_final_week_session, false)
                then 'no_final_week_session' end,
            case when not coalesce(window_summary.has_dry_needling, false)
                then 'no_dry_needling' end,
            case when not coalesce(window_summary.has_adjunct_therapy, false)
                then 'no_adjunct_therapy' end,
            case when plan_windows.planned_sessions is not null
                and coalesce(window_summary.sessions_in_window, 0) < plan_windows.planned_sessions
                then 'too_few_sessions' end
        ) as candidate_reasons,
        list_filter(candidate_reasons, lambda reason: reason is not null) as failing_reasons,
    from plan_windows
    left join window_summary on window_summary.plan_id = plan_windows.plan_id
),

final as (
    select
        plan_id,
        patient_key,
        clinic_id,
        clinic_timezone,
        start_date,
        planned_weeks,
        window_end,
        case
            when not_evaluated_as is not null then not_evaluated_as
            when len(failing_reasons) = 0 then 'complete'
            else 'incomplete'
        end as completion,
        case
            when not_evaluated_as is not null then []::varchar[]
            else failing_reasons
        end as reasons,
        sessions_in_window,
        status,
        planned_sessions,
    from evaluated
)

select * from final
