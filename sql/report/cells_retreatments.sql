-- marts.report_cells, table retreatments (R1, R7), before suppression: re-treatment flags per clinic (rows;
-- 'total' the sum), in the network's table only (clinic_id 'all': a clinic's report reads its own row),
-- for the last $list_days days up to $as_of (local dates) and all time. flags: base the flags, patients
-- the patients flagged; a clinic with none shows 0. Reads: quality.retreatment_flags, core.sessions,
-- core.plans.
with

clinics as (
    select clinic_id from core.sessions where clinic_id is not null
    union
    select clinic_id from core.plans where clinic_id is not null
),

flags as (
    select
        flags.clinic_id,
        sessions.patient_key,
        cast(timezone(sessions.clinic_timezone, sessions.started_at) as date) as local_date,
    from quality.retreatment_flags as flags
    inner join core.sessions as sessions on sessions.session_id = flags.session_id
),

periods as (
    select 'all_time' as period, clinic_id, patient_key from flags
    union all
    select 'last_30_days' as period, clinic_id, patient_key
    from flags
    where local_date > $as_of - $list_days and local_date <= $as_of
),

scoped as (
    select period.period, clinics.clinic_id, periods.patient_key,
    from clinics
    cross join (values ('all_time'), ('last_30_days')) as period(period)
    left join periods on periods.clinic_id = clinics.clinic_id and periods.period = period.period
),

final as (
    select
        period,
        if(grouping(clinic_id) = 1, 'total', '=' || clinic_id) as row_key,  -- '=' marks a real clinic (cells.py decodes it)
        count(patient_key) as flags,
        count(distinct patient_key) as patients,
    from scoped
    group by grouping sets ((period, clinic_id), (period))
)

select 'retreatments' as table_id, 'all' as clinic_id, period, row_key, 'total' as col_key, 'flags' as measure,
    flags::double as base, patients, flags::double as figure,
from final
