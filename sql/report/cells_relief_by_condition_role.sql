-- marts.report_cells, table relief_by_condition_role (R3, R7), before suppression: immediate relief of
-- needling sessions with both pains, rows condition, columns clinician role, 'total' on the margins, for
-- every clinic and the network ('all'), all time. Measures: sessions (a count; patients: those counted),
-- mean_relief_points (derived from sessions: it takes their mark), share_meaningful (base: the sessions
-- that could show meaningful relief, pain_before >= MCID; patients: theirs).
-- base is the additive figure suppression works on; figure is what the report shows.
-- Reads: marts.session_relief, core.sessions.
with

source as (
    select
        sessions.clinic_id,
        coalesce(sessions.condition, 'not_recorded') as condition,
        coalesce(sessions.clinician_role, 'not_recorded') as clinician_role,
        dense_rank() over (order by sessions.patient_key) as patient_no,  -- patients numbered, as in cells_relief_episodes.sql (2.5 -> 1.7 s at 1M sessions)
        relief.relief_points,
        relief.meaningful_relief,
    from marts.session_relief as relief
    inner join core.sessions as sessions on sessions.session_id = relief.session_id
    where relief.relief_points is not null
),

grouped as (
    select
        if(grouping(clinic_id) = 1, 'all', '=' || clinic_id) as clinic_id,  -- '=' marks a real clinic (cells.py decodes it)
        if(grouping(condition) = 1, 'total', condition) as row_key,
        if(grouping(clinician_role) = 1, 'total', clinician_role) as col_key,
        count(*) as sessions,
        count(distinct patient_no) as patients,
        avg(relief_points) as mean_relief_points,
        count(meaningful_relief) as rated_sessions,
        count(distinct patient_no) filter (where meaningful_relief is not null) as rated_patients,
        count(*) filter (where meaningful_relief) as meaningful_sessions,
    from source
    group by grouping sets (
        (clinic_id, condition, clinician_role), (clinic_id, condition), (clinic_id, clinician_role), (clinic_id),
        (condition, clinician_role), (condition), (clinician_role), ()
    )
),

final as (
    select clinic_id, row_key, col_key, 'sessions' as measure,
        sessions::double as base, patients, sessions::double as figure,
    from grouped
    union all
    select clinic_id, row_key, col_key, 'mean_relief_points' as measure,
        sessions::double as base, patients, mean_relief_points as figure,
    from grouped
    union all
    select clinic_id, row_key, col_key, 'share_meaningful' as measure,
        rated_sessions::double as base, rated_patients as patients,
        if(rated_sessions = 0, null, meaningful_sessions / rated_sessions) as figure,
    from grouped
)

select 'relief_by_condition_role' as table_id, clinic_id, 'all_time' as period, row_key, col_key, measure,
    base, patients, figure,
from final
