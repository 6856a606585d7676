-- Plan outcomes (R5) for the network and per clinic (the clinic of the plan).
-- Reads: marts.plan_outcomes, quality.plan_completion.
with

source as (
    select
        outcome.*,
        completion.patient_key,
        completion.clinic_id as plan_clinic_id,
    from marts.plan_outcomes as outcome
    inner join quality.plan_completion as completion on completion.plan_id = outcome.plan_id
),

final as (
    select
        plan_clinic_id as clinic_id,
        grouping(plan_clinic_id) = 1 as all_clinics,
        count(*) as plans,
        count(distinct patient_key) as patients,
        avg(baseline_pain) as baseline_pain,
        avg(final_pain) as final_pain,
        avg(change_points) as change_points,
        avg(achieved_mcid::integer) as mcid_share,
        avg(moderate::integer) as moderate_share,
        avg(substantial::integer) as substantial_share,
    from source
    group by grouping sets ((), (plan_clinic_id))
)

select * from final
