-- Relief episodes with a duration (R4), each with its patient number and the buckets (month, current or
-- previous period) its session falls in, for the Kaplan-Meier estimates of the report.
-- Reads: marts.relief_duration, temp.report_sessions (report_sessions.sql).
-- Parameters: $first_day, $as_of, $period_days.
with

source as (
    select
        episodes.clinic_id,
        episodes.condition,
        episodes.aftercare,
        episodes.duration_hours,
        episodes.relapsed,
        sessions.patient_no as patient_key,
        sessions.bucket_date,
    from marts.relief_duration as episodes
    -- every episode starts at a completed needling session
    inner join report_sessions as sessions on sessions.session_id = episodes.session_id
    where episodes.duration_hours is not null
),

final as (
    select
        * exclude (bucket_date),
        case
            when bucket_date between $first_day and $as_of then list_concat(
                [strftime(bucket_date, '%Y-%m')],
                case
                    when bucket_date > $as_of - $period_days then ['current']
                    when bucket_date > $as_of - 2 * $period_days then ['previous']
                    else []
                end
            )
            else []
        end as buckets,
    from source
)

select * from final
