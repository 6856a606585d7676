-- The rows GX suite `core_sessions` validates: one per session, the columns the
-- suite names, and booleans for checks that need the plans or the as-of date
-- (null where the check does not apply). Instants stay numpy-typed in pandas.
with

sessions as (
    select * from core.sessions
),

plans as (
    select * from core.plans
),

plan_starts as (
    -- one row per plan_id even if core.plans repeats one (core_plans reports that),
    -- so a repeated plan cannot make sessions look repeated here
    select
        plan_id,
        min(start_date) as start_date,
        min(clinic_timezone) as clinic_timezone,
    from plans
    group by plan_id
),

final as (
    select
        sessions.session_id,
        sessions.patient_key,
        sessions.clinic_id,
        sessions.clinician_id,
        sessions.clinician_role,
        sessions.started_at,
        sessions.status,
        len(sessions.therapies) as therapy_count,
        sessions.condition,
        sessions.pain_before,
        sessions.pain_after,
        sessions.aftercare,
        sessions.adverse_event,
        sessions.updated_at,
        sessions.clinic_timezone,
        case when sessions.plan_id is not null then plan_starts.plan_id is not null end as plan_is_known,
        -- Local dates: cast(timezone(zone, started_at) as date), compared with a date. That
        -- conversion is most of this query's time, and no zone is a day or more from UTC, so
        -- an instant at least a day before or after the date in UTC decides the comparison
        -- without it; only instants within a day of it are converted.
        case
            when sessions.clinic_timezone is null then null
            when sessions.started_at < getvariable('as_of') then true
            when sessions.started_at >= getvariable('as_of') + 2 then false
            else cast(timezone(sessions.clinic_timezone, sessions.started_at) as date) <= getvariable('as_of')
        end as started_by_as_of,
        -- the plan's local dates are in the plan's clinic's zone (rules.md R2)
        case
            when plan_starts.clinic_timezone is null or plan_starts.start_date is null then null
            when sessions.started_at >= plan_starts.start_date + 1 then true
            when sessions.started_at < plan_starts.start_date - 1 then false
            else cast(timezone(plan_starts.clinic_timezone, sessions.started_at) as date) >= plan_starts.start_date
        end as started_on_or_after_plan_start,
    from sessions
    left join plan_starts on plan_starts.plan_id = sessions.plan_id
)

select * from final
