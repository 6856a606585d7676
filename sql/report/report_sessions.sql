-- Report stage, step 2 (run by clinic_outcomes.report.queries.prepare; dropped after the report is built).
-- The completed sessions with what the report's queries read of them: the day they count in (bucket_date)
-- and their relief (one join with marts.session_relief instead of one per query).
--
-- bucket_date: the day the report's periods and months place a session in. A session belongs to the period
-- or month of its local date (its clinic's zone), which is its UTC date or a day either side (zones are
-- within a day of UTC). The report compares that date only with these boundaries: the first day of a month,
-- the first and the last day reported ($first_day, $as_of) and the starts of the two periods of
-- $period_days days. Unless one of them is within a day of the UTC date, the three candidate dates fall in
-- the same month, period and range, so the UTC date places the session where its local date would. Only the
-- sessions near a boundary need the time-zone conversion (0.3 s wall at 1M sessions for all of them).
-- bucket_date is for bucketing only: it is not the session's local date.
-- Reads: core.sessions, marts.session_relief, temp.report_patients (report_patients.sql).
-- Writes: temp.report_sessions. Parameters: $first_day, $as_of, $period_days.
create or replace temp table report_sessions as
with completed as (
    select
        *,
        date '1970-01-01' + (epoch_us(started_at) // 86400000000)::integer as utc_date,
    from core.sessions
    where status = 'completed'
)
select
    sessions.session_id,
    patients.patient_no,
    sessions.plan_id,
    sessions.clinic_id,
    sessions.clinician_role,
    sessions.condition,
    case
        when day(sessions.utc_date) = 1 or day(sessions.utc_date + 1) = 1
            or abs(sessions.utc_date - $first_day) <= 1 or abs(sessions.utc_date - $as_of) <= 1
            or abs(sessions.utc_date - ($as_of - $period_days)) <= 1
            or abs(sessions.utc_date - ($as_of - 2 * $period_days)) <= 1
        then cast(timezone(sessions.clinic_timezone, sessions.started_at) as date)
        else sessions.utc_date
    end as bucket_date,
    list_contains(sessions.therapies, 'dry_needling') as is_needling,
    coalesce(sessions.adverse_event, 'none') <> 'none' as had_adverse_event,
    relief.relief_points,
    relief.meaningful_relief,
from completed as sessions
left join report_patients as patients on patients.patient_key = sessions.patient_key
left join marts.session_relief as relief on relief.session_id = sessions.session_id
