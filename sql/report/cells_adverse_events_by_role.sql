-- marts.report_cells, table adverse_events_by_role (R6, R7), before suppression: adverse events per 100
-- needling sessions, rows event type ('total': every event), columns clinician role ('total'), for every
-- clinic and the network ('all'), all time. per_100_sessions: base the events (additive), patients those
-- of its denominator (the column's needling sessions, R7); sessions on the total row: base and patients
-- the sessions'. A type outside the six counts as 'other', so the types add up to the total row.
-- Reads: core.sessions.
with

-- Two steps, as in cells_relief_by_condition_role.sql: sessions counted per clinic, role and patient first,
-- then the grouping sets over those rows (DuckDB's distinct aggregates over grouping sets are what cost).
per_patient as (
    select
        clinic_id,
        coalesce(clinician_role, 'not_recorded') as clinician_role,
        patient_key,
        count(*) as sessions,
        -- the loader admits only the seed's types (sql/seeds/adverse_events.csv); 'none' is no event
        count(*) filter (where adverse_event = 'soreness') as soreness,
        count(*) filter (where adverse_event = 'bruising') as bruising,
        count(*) filter (where adverse_event = 'swelling') as swelling,
        count(*) filter (where adverse_event = 'bleeding') as bleeding,
        count(*) filter (where adverse_event = 'fainting') as fainting,
        count(*) filter (where adverse_event = 'other') as other,
        count(*) filter (where coalesce(adverse_event, 'none') <> 'none') as total,
    from core.sessions
    where status = 'completed' and list_contains(therapies, 'dry_needling')
    group by all
),

grouped as (
    select
        if(grouping(clinic_id) = 1, 'all', '=' || clinic_id) as clinic_id,  -- '=' marks a real clinic (cells.py decodes it)
        if(grouping(clinician_role) = 1, 'total', clinician_role) as col_key,
        sum(sessions)::bigint as sessions,
        count(distinct patient_key) as patients,
        sum(soreness)::bigint as soreness,
        sum(bruising)::bigint as bruising,
        sum(swelling)::bigint as swelling,
        sum(bleeding)::bigint as bleeding,
        sum(fainting)::bigint as fainting,
        sum(other)::bigint as other,
        sum(total)::bigint as total,
    from per_patient
    group by grouping sets ((clinic_id, clinician_role), (clinic_id), (clinician_role), ())
),

events as (
    unpivot grouped
    on soreness, bruising, swelling, bleeding, fainting, other, total
    into name row_key value events
),

final as (
    select clinic_id, row_key, col_key, 'per_100_sessions' as measure,
        events::double as base, patients, 100.0 * events / sessions as figure,
    from events
    union all
    select clinic_id, 'total' as row_key, col_key, 'sessions' as measure,
        sessions::double as base, patients, sessions::double as figure,
    from grouped
)

select 'adverse_events_by_role' as table_id, clinic_id, 'all_time' as period, row_key, col_key, measure,
    base, patients, figure,
from final
