-- Every expectation of every run, appended by flows/validate.py; the history of
-- all runs stays, so a manager can see when a check started or stopped failing.
create table if not exists quality.expectation_results (
    run_id bigint,
    suite varchar,
    expectation varchar,
    column_name varchar,
    description varchar,
    severity varchar,
    dimension varchar,
    success boolean,
    element_count bigint,
    unexpected_count bigint,
    unexpected_percent double,
    details varchar,
    as_of date,
    evaluated_at timestamptz,
    scope varchar,
)
