-- Immediate relief (R3) of needling sessions by condition x clinician role, with their margins, for the
-- network and per clinic. Reads: temp.report_sessions (report_sessions.sql). Parameters: $patients.
with

-- marts.session_relief's rows, joined to their (completed needling) sessions in report_sessions
source as (
    select
        clinic_id,
        condition,
        clinician_role,
        relief_points,
        meaningful_relief,
        patient_no,
    from report_sessions
    where relief_points is not null
),

finest as (
    select
        clinic_id,
        condition,
        clinician_role,
        count(*) as sessions,
        sum(relief_points) as relief_points,
        count(*) filter (where meaningful_relief) as meaningful_sessions,
        count(meaningful_relief) as rated_sessions,
        bitstring_agg(patient_no, 1, $patients) filter (where patient_no is not null) as patients,
    from source
    group by all
),

final as (
    select
        clinic_id,
        grouping(clinic_id) = 1 as all_clinics,
        condition,
        grouping(condition) = 1 as all_conditions,
        clinician_role,
        grouping(clinician_role) = 1 as all_roles,
        sum(sessions)::bigint as sessions,
        coalesce(bit_count(bit_or(patients)), 0) as patients,
        -- relief points are whole numbers: the same mean as avg() over the sessions
        sum(relief_points) / sum(sessions) as mean_relief_points,
        sum(meaningful_sessions) / sum(rated_sessions) as meaningful_share,
    from finest
    group by grouping sets (
        (condition, clinician_role), (condition), (clinician_role), (),
        (clinic_id, condition, clinician_role), (clinic_id, condition), (clinic_id, clinician_role), (clinic_id)
    )
)

select * from final
