-- Activity per clinic (and the network) and bucket: each calendar month, and the current and previous
-- periods of $period_days days. Distinct patients of a group as a bitstring over the report's patient
-- numbers (bit n: patient n): the network's patients are the OR of its clinics', so no step needs a row
-- per patient. Reads: temp.report_sessions (report_sessions.sql).
-- Parameters: $first_day, $as_of, $period_days, $patients (how many patient numbers there are).
with

source as (
    select
        patient_no,
        plan_id,
        clinic_id,
        is_needling,
        had_adverse_event,
        -- R3 floor: only a session that could show meaningful relief (pain_before >= MCID) is in the share's
        -- denominator; meaningful_relief is null for the others ("too little pain to measure", never a failure)
        meaningful_relief is not null as has_relief,
        meaningful_relief,
        bucket_date,
    from report_sessions
    where bucket_date between $first_day and $as_of
),

-- One row per plan and bucket: its calendar month, and the current or previous period when recent.
-- (Unnesting the buckets and counting distinct plans and patients per grouping set took twice as long at 1M.)
per_plan as (
    select
        clinic_id,
        patient_no,
        plan_id,
        strftime(bucket_date, '%Y-%m') as bucket,
        count(*) filter (where is_needling) as needling_sessions,
        count(*) filter (where is_needling and had_adverse_event) as adverse_events,
        count(*) filter (where is_needling and has_relief) as relief_sessions,
        count(*) filter (where is_needling and meaningful_relief) as meaningful_relief_sessions,
    from source
    group by all

    union all

    select
        clinic_id,
        patient_no,
        plan_id,
        if(bucket_date > $as_of - $period_days, 'current', 'previous') as bucket,
        count(*) filter (where is_needling) as needling_sessions,
        count(*) filter (where is_needling and had_adverse_event) as adverse_events,
        count(*) filter (where is_needling and has_relief) as relief_sessions,
        count(*) filter (where is_needling and meaningful_relief) as meaningful_relief_sessions,
    from source
    where bucket_date > $as_of - 2 * $period_days
    group by all
),

-- then one row per clinic and bucket, its patients as bitstrings: the network's are their OR
per_clinic as (
    select
        clinic_id,
        bucket,
        -- one row per patient and plan here: in the network, a plan counts once per clinic it was seen in
        count(plan_id) as plans,
        sum(needling_sessions) as needling_sessions,
        sum(adverse_events) as adverse_events,
        sum(relief_sessions) as relief_sessions,
        sum(meaningful_relief_sessions) as meaningful_relief_sessions,
        bitstring_agg(patient_no, 1, $patients) filter (where patient_no is not null) as patients,
        bitstring_agg(patient_no, 1, $patients) filter (where patient_no is not null and plan_id is not null) as plan_patients,
        bitstring_agg(patient_no, 1, $patients) filter (where patient_no is not null and needling_sessions > 0) as needling_patients,
        bitstring_agg(patient_no, 1, $patients) filter (where patient_no is not null and relief_sessions > 0) as relief_patients,
    from per_plan
    group by all
),

final as (
    select
        clinic_id,
        bucket,
        coalesce(bit_count(bit_or(patients)), 0) as patients,
        sum(plans) as plans,
        coalesce(bit_count(bit_or(plan_patients)), 0) as plan_patients,
        sum(needling_sessions) as needling_sessions,
        coalesce(bit_count(bit_or(needling_patients)), 0) as needling_patients,
        sum(adverse_events) as adverse_events,
        sum(relief_sessions) as relief_sessions,
        sum(meaningful_relief_sessions) as meaningful_relief_sessions,
        coalesce(bit_count(bit_or(relief_patients)), 0) as relief_patients,
    from per_clinic
    group by grouping sets ((bucket), (clinic_id, bucket))
)

select * from final
