-- Inside one metrics run patients are small integers rather than 64-character keys: every join, sort and distinct
-- count over patients is several times cheaper, and the numbers never leave compute_marts (no mart carries a patient
-- column); metrics/marts.py drops the table when it is done.
create or replace temp table metrics_patient_numbers as
with
keys as (
    select patient_key from core.sessions
    union select patient_key from core.pain_checkins
    union select patient_key from core.plans
    union select patient_key from quality.plan_completion
)

select
    patient_key,
    (row_number() over (order by patient_key))::uinteger as patient_no,
from keys
