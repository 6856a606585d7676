-- R2 plan completion per clinic: how many plans are in each state, and the share of evaluated plans
-- (complete, discharged_improved or incomplete) that were completed or discharged improved.
create or replace view views.plan_completion_by_clinic as
with
source as (
    select * from quality.plan_completion
),

final as (
    select
        source.clinic_id as clinic_id,
        count(*) as plans,
        count_if(source.completion = 'complete') as complete,
        count_if(source.completion = 'discharged_improved') as discharged_improved,
        count_if(source.completion = 'incomplete') as incomplete,
        count_if(source.completion = 'in_progress') as in_progress,
        count_if(source.completion = 'cancelled') as cancelled,
        count_if(source.completion not in ('in_progress', 'cancelled')) as evaluated,
        round(
            100.0 * count_if(source.completion in ('complete', 'discharged_improved'))
            / nullif(count_if(source.completion not in ('in_progress', 'cancelled')), 0),
            1
        ) as completed_pct,
    from source
    group by source.clinic_id
)

select * from final
order by clinic_id
