-- R8: the evaluated plans with an outcome the plan models are fitted on (marts.plan_outcomes), with their
-- patient's latest sex and age band, their chronicity and their clinician (the clinician of most of the plan's
-- completed sessions; a tie goes to the one who saw the patient first).
with
plan_clinicians as (
    select plan_id, arg_min(clinician_id, (-sessions, first_started, clinician_id)) as clinician_id,
    from (
        select plan_id, clinician_id, count(*) as sessions, min(started_at) as first_started,
        from core.sessions
        where status = 'completed' and plan_id is not null
        group by plan_id, clinician_id
    )
    group by plan_id
),
patients as (
    select patient_key, arg_max(sex, updated_at) as sex, arg_max(age_band, updated_at) as age_band,
    from core.patients group by patient_key
),
final as (
    select
        outcomes.plan_id as row_id,
        plans.patient_key,
        plans.clinic_id,
        plan_clinicians.clinician_id,
        outcomes.baseline_pain::double as baseline_pain,
        outcomes.condition,
        patients.age_band,
        patients.sex,
        plans.chronicity,
        outcomes.change_points::double as change_points,
        outcomes.achieved_mcid,
    from marts.plan_outcomes as outcomes
    inner join core.plans as plans on plans.plan_id = outcomes.plan_id
    left join plan_clinicians on plan_clinicians.plan_id = outcomes.plan_id
    left join patients on patients.patient_key = plans.patient_key
    where outcomes.baseline_pain is not null and outcomes.change_points is not null
)
select * from final order by row_id
