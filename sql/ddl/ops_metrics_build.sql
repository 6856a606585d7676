-- What the last metrics build used (one row; none before the first build): compute_marts recomputes the
-- per-patient marts whole when the fingerprint differs, else only for the patients whose inputs changed.
create table if not exists ops.metrics_build (
    fingerprint varchar not null,
    run_id integer,
    patients bigint not null,
    patients_recomputed bigint not null,
)
