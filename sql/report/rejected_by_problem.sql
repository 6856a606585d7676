-- Rows rejected by one run, by entity, column and kind of problem, from quality.rejected_rows' structured
-- fields column_name and problem (never from the reason text, which quotes the rejected value: R7).
-- Used when the table has both fields. Reads: quality.rejected_rows. Parameters: $run_id.
with

source as (
    select entity, column_name, problem from quality.rejected_rows where run_id = $run_id
),

final as (
    select
        entity,
        column_name,
        problem,
        count(*) as rows_rejected,
    from source
    group by all
)

select * from final order by rows_rejected desc, entity, column_name, problem
