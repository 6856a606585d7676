-- Report stage, step 1 (run by clinic_outcomes.report.queries.prepare; dropped after the report is built).
-- Every patient as a small integer: hashing and comparing the 64-character patient_key is most of the cost
-- of a distinct count or a join at a million sessions.
-- Reads: core.sessions, core.plans, quality.plan_completion. Writes: temp.report_patients.
create or replace temp table report_patients as
with keys as (
    select patient_key from core.sessions
    union select patient_key from core.plans
    union select patient_key from quality.plan_completion
)
select patient_key, (row_number() over ())::uinteger as patient_no
from keys
where patient_key is not null
