-- Every rejected row (and every file rejected whole) of every run, with its reason.
create table if not exists quality.rejected_rows (
    run_id integer not null,
    source_file varchar not null,
    line_number bigint,
    entity varchar not null,
    reason varchar not null,
    record json,
)
