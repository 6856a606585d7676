-- The last ten runs with the expectations each failed. Reads: ops.runs, quality.expectation_results.
with

failed as (
    select run_id, count(*) filter (where not success) as expectations_failed
    from quality.expectation_results
    group by run_id
),

final as (
    select
        runs.run_id,
        runs.started_at,
        runs.finished_at,
        runs.as_of,
        runs.status,
        runs.rows_loaded,
        runs.rows_rejected,
        coalesce(failed.expectations_failed, 0) as expectations_failed,
    from ops.runs as runs
    left join failed on failed.run_id = runs.run_id
)

select * from final order by run_id desc limit 10
