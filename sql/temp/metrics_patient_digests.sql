-- One digest per patient of every input row that the per-patient marts read (metrics/incremental.py): a
-- patient's completed sessions, the completed sessions (anyone's) of the patient's plans (R5 reaches a plan's
-- sessions by plan_id), the patient's pain check-ins and the patient's R2 rows (which move with the as-of date).
-- Each row's hash covers exactly the columns compute_marts reads; the digest is their sum, so it does not depend
-- on row order. A patient whose digest is unchanged since the last metrics build has the same relief episodes
-- (R4), session relief rows (R3) and plan outcomes (R5) as then; a patient whose digest changed, appeared or
-- disappeared is recomputed.
create or replace temp table metrics_patient_digests as
with
input_rows as (
    select
        patient_key,
        hash('session', session_id, plan_id, clinic_id, clinician_role, started_at, status, therapies, condition,
             pain_before, pain_after, aftercare, adverse_event) as row_hash,
    from core.sessions
    where status = 'completed'

    union all

    select
        plans.patient_key,
        hash('plan session', sessions.session_id, sessions.plan_id, sessions.clinic_id, sessions.clinician_role,
             sessions.started_at, sessions.status, sessions.therapies, sessions.condition, sessions.pain_before,
             sessions.pain_after, sessions.aftercare, sessions.adverse_event) as row_hash,
    from core.sessions as sessions
    inner join quality.plan_completion as plans on plans.plan_id = sessions.plan_id
    where sessions.status = 'completed'

    union all

    select patient_key, hash('check-in', checkin_id, recorded_at, pain) as row_hash,
    from core.pain_checkins

    union all

    select
        patient_key,
        hash('plan', plan_id, clinic_id, clinic_timezone, start_date, window_end, completion) as row_hash,
    from quality.plan_completion
)

select patient_key, sum(row_hash::hugeint) as digest, count(*) as input_rows,
from input_rows
group by patient_key
