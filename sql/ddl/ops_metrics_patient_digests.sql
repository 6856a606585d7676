-- Each patient's input digest at the last metrics build (sql/temp/metrics_patient_digests.sql).
create table if not exists ops.metrics_patient_digests (
    patient_key varchar,
    digest hugeint not null,
    input_rows bigint not null,
)
