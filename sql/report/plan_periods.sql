-- Evaluated plans (complete, discharged_improved or incomplete) per clinic (and the network) and bucket (month, current and
-- previous period), counted in the period their planned window ended in, with their outcomes (R5).
-- Reads: quality.plan_completion, marts.plan_outcomes, temp.report_patients (report_patients.sql).
-- Parameters: $first_day, $as_of, $period_days, $patients.
with

source as (
    select
        completion.plan_id,
        patients.patient_no,
        completion.clinic_id,
        -- R2 "plans complete" (clinic_outcomes.metrics.plans.COMPLETE_COMPLETIONS over EVALUATED_COMPLETIONS;
        -- tests/report/test_report_rules.py checks these lists against them)
        completion.completion in ('complete', 'discharged_improved') as is_complete,
        -- a plan belongs to the period its planned window ended in (its last day)
        cast(completion.window_end as date) - 1 as last_day,
        outcome.achieved_mcid,
    from quality.plan_completion as completion
    left join report_patients as patients on patients.patient_key = completion.patient_key
    left join marts.plan_outcomes as outcome on outcome.plan_id = completion.plan_id
    where completion.completion not in ('in_progress', 'cancelled')  -- evaluated: R2's "otherwise"
),

bucketed as (
    select
        *,
        unnest(list_concat(
            [strftime(last_day, '%Y-%m')],
            case
                when last_day > $as_of - $period_days then ['current']
                when last_day > $as_of - 2 * $period_days then ['previous']
                else []
            end
        )) as bucket,
    from source
    where last_day between $first_day and $as_of
),

per_clinic as (
    select
        clinic_id,
        bucket,
        count(*) as evaluated_plans,
        bitstring_agg(patient_no, 1, $patients) filter (where patient_no is not null) as evaluated_patients,
        count(*) filter (where is_complete) as complete_plans,
        count(achieved_mcid) as outcome_plans,
        count(*) filter (where achieved_mcid) as mcid_plans,
        bitstring_agg(patient_no, 1, $patients) filter (where patient_no is not null and achieved_mcid is not null) as outcome_patients,
    from bucketed
    group by all
),

final as (
    select
        clinic_id,
        bucket,
        sum(evaluated_plans) as evaluated_plans,
        coalesce(bit_count(bit_or(evaluated_patients)), 0) as evaluated_patients,
        sum(complete_plans) as complete_plans,
        sum(outcome_plans) as outcome_plans,
        sum(mcid_plans) as mcid_plans,
        coalesce(bit_count(bit_or(outcome_patients)), 0) as outcome_patients,
    from per_clinic
    group by grouping sets ((bucket), (clinic_id, bucket))
)

select * from final
