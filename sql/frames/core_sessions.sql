-- The rows GX suite `core_sessions` validates: one per session, the columns the
-- suite names, and booleans for checks that need the plans or the as-of date
-- (null where the check does not apply). Instants stay numpy-typed in pandas.
-- The batch (validation/validate.py sets the variables; unset means every row): every session on a
-- full validation; on a night, the sessions the night wrote (changed_in_run) and the sessions whose plan
-- it wrote (their plan checks read the plan). rows_with_session_id counts each batch key over the whole
-- table, so a key the night repeats from an earlier night's row is caught though that row is not in the batch.
with

sessions as (
    select * from core.sessions
),

plans as (
    select * from core.plans
),

night_plans as (
    select distinct
        plan_id,
    from plans
    where changed_in_run = getvariable('validation_run')
),

batch as (
    select *
    from sessions
    where coalesce(getvariable('validation_full'), true)
        or sessions.changed_in_run = getvariable('validation_run')
        or sessions.plan_id in (select plan_id from night_plans)
),

key_rows as (
    select
        session_id,
        count(*) as rows_with_session_id,
    from sessions
    where session_id in (select session_id from batch)
    group by session_id
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
        batch.session_id,
        batch.patient_key,
        batch.clinic_id,
        batch.clinician_id,
        batch.clinician_role,
        batch.started_at,
        batch.status,
        len(batch.therapies) as therapy_count,
        batch.condition,
        batch.pain_before,
        batch.pain_after,
        batch.aftercare,
        batch.adverse_event,
        batch.updated_at,
        batch.clinic_timezone,
        key_rows.rows_with_session_id,
        case when batch.plan_id is not null then plan_starts.plan_id is not null end as plan_is_known,
        -- Local dates: cast(timezone(zone, started_at) as date), compared with a date. That
        -- conversion is most of this query's time, and no zone is a day or more from UTC, so
        -- an instant at least a day before or after the date in UTC decides the comparison
        -- without it; only instants within a day of it are converted.
        case
            when batch.clinic_timezone is null then null
            when batch.started_at < getvariable('as_of') then true
            when batch.started_at >= getvariable('as_of') + 2 then false
            else cast(timezone(batch.clinic_timezone, batch.started_at) as date) <= getvariable('as_of')
        end as started_by_as_of,
        -- the plan's local dates are in the plan's clinic's zone (rules.md R2)
        case
            when plan_starts.clinic_timezone is null or plan_starts.start_date is null then null
            when batch.started_at >= plan_starts.start_date + 1 then true
            when batch.started_at < plan_starts.start_date - 1 then false
            else cast(timezone(plan_starts.clinic_timezone, batch.started_at) as date) >= plan_starts.start_date
        end as started_on_or_after_plan_start,
    from batch
    left join plan_starts on plan_starts.plan_id = batch.plan_id
    left join key_rows on key_rows.session_id = batch.session_id
)

select * from final
