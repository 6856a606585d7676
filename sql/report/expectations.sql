-- The expectations one run failed. Reads: quality.expectation_results. Parameters: $run_id.
select suite, expectation, severity, unexpected_count
from quality.expectation_results
where run_id = $run_id and not success
order by severity, suite, expectation
