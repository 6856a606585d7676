-- marts.report_cells, table relief_by_condition_role (R3, R7), before suppression: immediate relief of
-- needling sessions with both pains, rows condition, columns clinician role, 'total' on the margins, for
-- every clinic and the network ('all'), all time. Measures: sessions (a count; patients: those counted),
-- mean_relief_points (derived from sessions: it takes their mark), share_meaningful (base: the sessions
-- that could show meaningful relief, pain_before >= MCID; patients: theirs).
-- base is the additive figure suppression works on; figure is what the report shows.
-- Reads: marts.session_relief, core.sessions.
with

-- Two steps: the sessions summed per cell and patient first, then the grouping sets over those rows, so that
-- the distinct patients of each grouping set are counted over ~1.6M rows instead of every session (at 10M
-- sessions 19.5-21 s -> 11.3-13.2 s, at 1M 2.2-2.5 -> 0.9-1.1 s; DuckDB's distinct aggregates over grouping sets
-- are what cost). The same two steps made the 16 grouping sets of cells_relief_episodes.sql slower (22.7 -> 55.2 s at
-- 10M: its cells hold about one episode per patient, so the first step removes few rows).
per_patient as (
    select
        sessions.clinic_id,
        coalesce(sessions.condition, 'not_recorded') as condition,
        coalesce(sessions.clinician_role, 'not_recorded') as clinician_role,
        sessions.patient_key,
        count(*) as sessions,
        sum(relief.relief_points) as relief_points,
        count(relief.meaningful_relief) as rated_sessions,
        count(*) filter (where relief.meaningful_relief) as meaningful_sessions,
    from marts.session_relief as relief
    inner join core.sessions as sessions on sessions.session_id = relief.session_id
    where relief.relief_points is not null
    group by all
),

grouped as (
    select
        if(grouping(clinic_id) = 1, 'all', '=' || clinic_id) as clinic_id,  -- '=' marks a real clinic (cells.py decodes it)
        if(grouping(condition) = 1, 'total', condition) as row_key,
        if(grouping(clinician_role) = 1, 'total', clinician_role) as col_key,
        sum(sessions)::bigint as sessions,
        count(distinct patient_key) as patients,
        sum(relief_points) / sum(sessions) as mean_relief_points,
        sum(rated_sessions)::bigint as rated_sessions,
        count(distinct patient_key) filter (where rated_sessions > 0) as rated_patients,
        sum(meaningful_sessions)::bigint as meaningful_sessions,
    from per_patient
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
