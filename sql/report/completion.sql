-- Plans by completion value and, for incomplete plans, by failing reason (R2), for the network and per
-- clinic, with the distinct patients behind each count.
-- Reads: quality.plan_completion, temp.report_patients (report_patients.sql). Parameters: $patients.
with

source as (
    select completion.clinic_id, completion.completion, completion.reasons, patients.patient_no,
    from quality.plan_completion as completion
    left join report_patients as patients on patients.patient_key = completion.patient_key
),

per_clinic as (
    select
        clinic_id,
        'completion' as kind,
        completion as value,
        count(*) as plans,
        bitstring_agg(patient_no, 1, $patients) filter (where patient_no is not null) as patients,
    from source
    group by all

    union all

    select
        clinic_id,
        'reason' as kind,
        reason as value,
        count(*) as plans,
        bitstring_agg(patient_no, 1, $patients) filter (where patient_no is not null) as patients,
    from (select clinic_id, patient_no, unnest(reasons) as reason from source where completion = 'incomplete')
    group by all
),

final as (
    select
        clinic_id,
        grouping(clinic_id) = 1 as all_clinics,
        kind,
        value,
        sum(plans) as plans,
        coalesce(bit_count(bit_or(patients)), 0) as patients,
    from per_clinic
    group by grouping sets ((kind, value), (clinic_id, kind, value))
)

select * from final
