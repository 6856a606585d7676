-- marts.report_cells, tables relief_duration and relief_comparison (R4, R7), before suppression: relief
-- episodes counted over the full cube clinic x condition x aftercare x clinician role with every margin
-- (a null value is 'not_recorded'; '=' marks a real clinic, as in cells_relief_by_condition_role.sql; a
-- margin is null here). The report publishes a few of these cells (report/figure_cells.py); the others
-- are the unpublished cells that tie them together (each episode in exactly one inner cell).
-- episodes, patients: followed-up episodes (those in the Kaplan-Meier estimate) and their patients;
-- no_followup, no_followup_patients: episodes without follow-up and their patients.
-- Reads: marts.relief_duration (interface.md's columns), core.sessions (patient, clinician role).
with

source as (
    select
        episodes.clinic_id,
        coalesce(episodes.condition, 'not_recorded') as condition,
        coalesce(episodes.aftercare, 'not_recorded') as aftercare,
        coalesce(sessions.clinician_role, 'not_recorded') as clinician_role,
        dense_rank() over (order by sessions.patient_key) as patient_no,  -- patients numbered: count(distinct) over numbers, not 64-character keys (the cube 5.4 -> 2.9 s at 1M sessions)
        episodes.duration_hours is not null as followed_up,  -- interface.md: null without follow-up
    from marts.relief_duration as episodes
    inner join core.sessions as sessions on sessions.session_id = episodes.session_id
),

final as (
    select
        if(grouping(clinic_id) = 1, null, '=' || clinic_id) as clinic_id,
        if(grouping(condition) = 1, null, condition) as condition,
        if(grouping(aftercare) = 1, null, aftercare) as aftercare,
        if(grouping(clinician_role) = 1, null, clinician_role) as clinician_role,
        count(*) filter (where followed_up) as episodes,
        count(distinct patient_no) filter (where followed_up) as patients,
        count(*) filter (where not followed_up) as no_followup,
        count(distinct patient_no) filter (where not followed_up) as no_followup_patients,
    from source
    group by cube (clinic_id, condition, aftercare, clinician_role)
)

select * from final
