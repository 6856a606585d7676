-- Distinct patients behind the safety marts' groups (marts.adverse_events, aftercare_mix, pcp_clearance),
-- which do not carry them all. Reads: core.plans, temp.report_sessions (report_sessions.sql).
-- Parameters: $patients.
with

needling as (
    select clinic_id, clinician_role, bitstring_agg(patient_no, 1, $patients) filter (where patient_no is not null) as patients,
    from report_sessions
    where is_needling
    group by all
),

needling_groups as (
    select
        'sessions' as source,
        case when grouping(clinic_id) = 0 then 'clinic' when grouping(clinician_role) = 0 then 'clinician_role' else 'all' end as group_by,
        coalesce(clinic_id, clinician_role) as group_value,
        coalesce(bit_count(bit_or(patients)), 0) as patients,
    from needling
    group by grouping sets ((), (clinic_id), (clinician_role))
),

plan_groups as (
    select
        'plans' as source,
        case when grouping(clinic_id) = 0 then 'clinic' else 'all' end as group_by,
        clinic_id as group_value,
        count(distinct patient_key) as patients,
    from core.plans
    group by grouping sets ((), (clinic_id))
),

final as (
    select * from needling_groups
    union all
    select * from plan_groups
)

select * from final
