-- marts.report_cells, table plan_completion (R2, R7), before suppression: plans by completion value (rows,
-- 'total' the sum), one column ('total'), for every clinic (the plan's) and the network ('all'), all time.
-- Measures: plans (a count; patients: those counted) and share (of all the scope's plans; derived from
-- plans: it takes their mark). Reads: quality.plan_completion.
with

source as (
    select clinic_id, coalesce(completion, 'not_recorded') as completion, patient_key,
    from quality.plan_completion
),

grouped as (
    select
        if(grouping(clinic_id) = 1, 'all', '=' || clinic_id) as clinic_id,  -- '=' marks a real clinic (cells.py decodes it)
        if(grouping(completion) = 1, 'total', completion) as row_key,
        count(*) as plans,
        count(distinct patient_key) as patients,
    from source
    group by grouping sets ((clinic_id, completion), (clinic_id), (completion), ())
),

with_totals as (
    select grouped.*, totals.plans as scope_plans,
    from grouped
    inner join grouped as totals on totals.clinic_id = grouped.clinic_id and totals.row_key = 'total'
),

final as (
    select clinic_id, row_key, 'plans' as measure, plans::double as base, patients, plans::double as figure,
    from with_totals
    union all
    select clinic_id, row_key, 'share' as measure, plans::double as base, patients, plans / scope_plans as figure,
    from with_totals
)

select 'plan_completion' as table_id, clinic_id, 'all_time' as period, row_key, 'total' as col_key, measure,
    base, patients, figure,
from final
