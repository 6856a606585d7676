-- What the last core build used and covered (one row; none before the first build): build_core rebuilds core
-- whole when the fingerprint differs, else replaces only the rows of raw versions loaded after through_file_id.
create table if not exists ops.core_build (
    fingerprint varchar not null,
    through_file_id integer not null,
    previous_file_id integer,
    run_id integer not null,
)
