-- The sessions whose R1 rows an incremental build replaces: every session of the patients in r1_patients, and every
-- session without a patient (which has no R1 row). quality/tables.py creates the table, this fills it.
-- inputs (temp tables and views Python or an earlier file fills; tests/test_sql_inputs.py checks them):
--   r1_patients: patient_key
insert into r1_sessions
select session_id from core.sessions
where patient_key is null or patient_key in (select patient_key from r1_patients)
