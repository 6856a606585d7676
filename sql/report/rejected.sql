-- Rows rejected by one run, by entity and reason. Reasons quote the offending value; the value is
-- replaced by "(value)" so the report names the problem, never the value. Reads: quality.rejected_rows.
-- Parameters: $run_id.
with

source as (
    select * from quality.rejected_rows where run_id = $run_id
),

final as (
    select
        entity,
        -- reasons quote the offending value; the report names the problem, never the value
        regexp_replace(reason, '''[^'']*''|"[^"]*"', '(value)', 'g') as reason,
        count(*) as rows_rejected,
    from source
    group by all
)

select * from final order by rows_rejected desc, entity, reason
