-- The file ledger: one row per export file read (loaded or rejected whole). A file whose sha256 is here
-- is never loaded again; a corrected file under the same name has new content, hence a new row.
create table if not exists ops.loaded_files (
    run_id integer not null,
    file_id integer not null,
    path varchar not null,
    drop_name varchar not null,
    entity varchar not null,
    file_format varchar not null,
    sha256 varchar not null,
    status varchar not null,
    rows_read bigint not null,
    rows_loaded bigint not null,
    rows_rejected bigint not null,
    ignored_columns varchar[],
    loaded_at timestamptz not null,
)
