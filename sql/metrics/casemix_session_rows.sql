-- R8: the needling sessions that could show meaningful relief (pain_before >= MCID, $mcid) the session model
-- is fitted on, with their patient's latest sex and age band and their plan's chronicity.
with
patients as (
    select patient_key, arg_max(sex, updated_at) as sex, arg_max(age_band, updated_at) as age_band,
    from core.patients group by patient_key
),
final as (
    select
        sessions.session_id as row_id,
        sessions.patient_key,
        sessions.clinic_id,
        sessions.clinician_id,
        sessions.pain_before::double as baseline_pain,
        sessions.condition,
        patients.age_band,
        patients.sex,
        plans.chronicity,
        sessions.pain_before - sessions.pain_after >= $mcid as meaningful_relief,
    from core.sessions as sessions
    left join core.plans as plans on plans.plan_id = sessions.plan_id
    left join patients on patients.patient_key = sessions.patient_key
    where sessions.status = 'completed'
        and list_contains(sessions.therapies, 'dry_needling')
        and sessions.pain_before is not null
        and sessions.pain_after is not null
        and sessions.pain_before >= $mcid
)
select * from final order by row_id
