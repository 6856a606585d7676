-- Rows rejected by one run, by entity. The reason text quotes the offending value, so it is never shown
-- (R7): this is the fallback while quality.rejected_rows records the column and the kind of problem only
-- in that text (rejected_by_problem.sql reads them once they are fields). Reads: quality.rejected_rows.
-- Parameters: $run_id.
with

source as (
    select entity from quality.rejected_rows where run_id = $run_id
),

final as (
    select
        entity,
        count(*) as rows_rejected,
    from source
    group by all
)

select * from final order by rows_rejected desc, entity
