-- Re-treatment flags (R1) with the local date of the flagged session, and whether it falls in the last
-- $list_days days up to $as_of. Reads: quality.retreatment_flags, core.sessions.
with

source as (
    select
        flags.clinic_id,
        flags.clinician_id,
        flags.site,
        flags.side,
        flags.hours_since_previous,
        cast(timezone(sessions.clinic_timezone, sessions.started_at) as date) as local_date,
    from quality.retreatment_flags as flags
    inner join core.sessions as sessions on sessions.session_id = flags.session_id
),

final as (
    select
        *,
        local_date > $as_of - $list_days and local_date <= $as_of as is_recent,
    from source
)

select * from final
