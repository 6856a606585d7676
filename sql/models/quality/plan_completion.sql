-- R2: every plan with its completion and every failing reason, in the order
-- rules.md lists them. The GX suite `plan_completion` validates `completion`
-- of this table, so the warehouse and the GX results cannot disagree.
--
-- discharged_improved needs R5's outcome (achieved_mcid), which the metrics stage computes after
-- validation has started; so R5's baseline and final pain are worked out here, in the same way as
-- clinic_outcomes.metrics.plans.plan_outcomes (a test compares the two), for the plans that need them:
-- discharged (status 'discharged') before the window's last week, i.e. with no session in it. The
-- export has no discharge date; a discharged plan with no session in its final week is one that
-- stopped before it.

with

plans as (
    select * from core.plans
),

sessions as (
    select * from core.sessions
),

checkins as (
    select * from core.pain_checkins
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
        pain_before,
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
        completed_sessions.pain_before,
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
        started_at,
        pain_before,
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

discharged_early as (
    -- R2: discharged before the window's last week, failing at least that reason (so not complete)
    select
        plan_id,
        patient_key,
        clinic_timezone,
        start_date,
        window_end,
    from evaluated
    where not_evaluated_as is null
        and status = 'discharged'
        and list_contains(failing_reasons, 'no_final_week_session')
),

early_sessions as (
    select window_sessions.*,
    from window_sessions
    inner join discharged_early on discharged_early.plan_id = window_sessions.plan_id
    where window_sessions.pain_before is not null
),

early_baselines as (
    -- R5 baseline: pain_before of the plan's first session (by time, then session_id) that has one
    select
        plan_id,
        arg_min(pain_before, (started_at, session_id)) as baseline_pain,
    from early_sessions
    group by plan_id
),

early_checkins as (
    -- the patient's check-ins whose local date (plan clinic's zone) is in the window
    select
        discharged_early.plan_id,
        checkins.recorded_at as observed_at,
        0 as source_rank,
        checkins.checkin_id as observation_id,
        checkins.pain,
    from discharged_early
    inner join checkins on checkins.patient_key = discharged_early.patient_key
    where cast(timezone(discharged_early.clinic_timezone, checkins.recorded_at) as date) >= discharged_early.start_date
        and cast(timezone(discharged_early.clinic_timezone, checkins.recorded_at) as date) < discharged_early.window_end
),

early_observations as (
    select plan_id, started_at as observed_at, 1 as source_rank, session_id as observation_id, pain_before as pain,
    from early_sessions
    union all
    select plan_id, observed_at, source_rank, observation_id, pain,
    from early_checkins
),

early_finals as (
    -- R5 final: the latest observation; on a tie in time the session's, then the greater id
    select
        plan_id,
        arg_max(pain, (observed_at, source_rank, observation_id)) as final_pain,
    from early_observations
    group by plan_id
),

early_outcomes as (
    select
        early_baselines.plan_id,
        early_baselines.baseline_pain,
        early_finals.final_pain,
        early_baselines.baseline_pain - early_finals.final_pain >= getvariable('mcid_points') as achieved_mcid,
    from early_baselines
    inner join early_finals on early_finals.plan_id = early_baselines.plan_id
),

final as (
    select
        evaluated.plan_id,
        patient_key,
        clinic_id,
        clinic_timezone,
        start_date,
        planned_weeks,
        window_end,
        case
            when not_evaluated_as is not null then not_evaluated_as
            when len(failing_reasons) = 0 then 'complete'
            when early_outcomes.achieved_mcid then 'discharged_improved'
            else 'incomplete'
        end as completion,
        case
            when not_evaluated_as is not null then []::varchar[]
            else failing_reasons
        end as reasons,
        sessions_in_window,
        status,
        planned_sessions,
        early_outcomes.baseline_pain as early_baseline_pain,
        early_outcomes.final_pain as early_final_pain,
        early_outcomes.achieved_mcid as early_achieved_mcid,
    from evaluated
    left join early_outcomes on early_outcomes.plan_id = evaluated.plan_id
)

select * from final
