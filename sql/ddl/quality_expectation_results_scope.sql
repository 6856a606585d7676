-- quality.expectation_results of a warehouse from before the scope column gains it (null for the runs before).
alter table quality.expectation_results add column if not exists scope varchar
