-- The patients whose R1 spots may have changed in the core build of run $run: one of their sessions or its
-- needle sites was written by it (changed_in_run), or a session it wrote was the previous needling session of one
-- of their spots (the session moved to another patient, or stopped being a needling session).
-- quality/tables.py creates the table, this fills it.
insert into r1_patients
with
written as (
    select session_id from core.sessions where changed_in_run = $run
    union
    select session_id from core.needle_sites where changed_in_run = $run
),

-- the spots a written session is in now
current_patients as (
    select sessions.patient_key
    from core.sessions as sessions
    semi join written on written.session_id = sessions.session_id
),

-- the spots a written session was in before: its next session there had it as previous_session_id
previous_patients as (
    select sessions.patient_key
    from core.sessions as sessions
    semi join (
        select checks.session_id
        from quality.retreatment_checks as checks
        semi join written on written.session_id = checks.previous_session_id
    ) as next_sessions on next_sessions.session_id = sessions.session_id
)

select patient_key from current_patients where patient_key is not null
union
select patient_key from previous_patients where patient_key is not null
