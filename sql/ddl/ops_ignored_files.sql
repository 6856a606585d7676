-- Files found in the exports folder that are not export files (exports.md: ignored and reported).
create table if not exists ops.ignored_files (
    run_id integer not null,
    path varchar not null,
    reason varchar not null,
)
