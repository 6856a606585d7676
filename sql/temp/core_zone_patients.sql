-- The patients whose check-ins an incremental core build re-reads: a patient's check-ins are read in the zone of
-- the patient's latest plan, so every patient a plan loaded after file $since belongs to, now or before (core.plans
-- still holds the version before), may have another zone. core/build.py creates the table, this fills it.
insert into core_zone_patients
with
changed as (
    select plan_id, patient_key from raw.plans where _file_id > $since
)

select patient_key from changed
union
select patient_key from core.plans semi join changed on changed.plan_id = core.plans.plan_id
