-- Needling sessions with "too little pain to measure" (R3 floor: pain_before below the MCID, so
-- could_show_relief is false and meaningful_relief null), counted apart from the share with meaningful
-- relief and never as failures; all time, for the network (all_clinics) and per clinic, with the distinct
-- patients counted (small cells). Reads: marts.session_relief, core.sessions.
select
    sessions.clinic_id,
    grouping(sessions.clinic_id) = 1 as all_clinics,
    count(*) as sessions,
    count(distinct sessions.patient_key) as patients,
from marts.session_relief as relief
inner join core.sessions as sessions on sessions.session_id = relief.session_id
where relief.could_show_relief = false
group by grouping sets ((), (sessions.clinic_id))
