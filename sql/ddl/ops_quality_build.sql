-- What the R1 tables (quality.retreatment_checks, retreatment_flags) were last built from (one row; none until
-- they were built after a recorded core build): build_quality_tables replaces only the rows of the patients
-- core's next build touched when that build was incremental and followed this one; else it rebuilds them.
create table if not exists ops.quality_build (
    fingerprint varchar not null,
    core_fingerprint varchar not null,
    core_through_file_id integer not null,
    core_run_id integer not null,
)
