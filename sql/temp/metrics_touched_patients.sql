-- The patients whose per-patient marts an incremental metrics build recomputes: a digest that changed since the
-- last build (ops.metrics_patient_digests), a patient new since then or gone since, and the rows without a
-- patient (null patient_key: never carried over).
-- inputs (temp tables and views Python or an earlier file fills; tests/test_sql_inputs.py checks them):
--   metrics_patient_digests: patient_key, digest, input_rows
create or replace temp table metrics_touched_patients as
select coalesce(now.patient_key, before.patient_key) as patient_key,
from metrics_patient_digests as now
full outer join ops.metrics_patient_digests as before on before.patient_key = now.patient_key
where now.digest is distinct from before.digest or now.patient_key is null
