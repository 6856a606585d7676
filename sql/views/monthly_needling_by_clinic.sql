-- Managers' most asked question: how many dry-needling sessions, and for how many patients, each clinic
-- delivered each month. Months are the clinic's local calendar months; patients are counted once per month.
create or replace view views.monthly_needling_by_clinic as
with
source as (
    select * from core.sessions
),

needling as (
    select
        source.clinic_id as clinic_id,
        date_trunc('month', timezone(source.clinic_timezone, source.started_at))::date as month,
        source.patient_key as patient_key,
    from source
    where source.status = 'completed' and list_contains(source.therapies, 'dry_needling')
),

final as (
    select
        needling.clinic_id as clinic_id,
        needling.month as month,
        count(*) as needling_sessions,
        count(distinct needling.patient_key) as patients,
    from needling
    group by needling.clinic_id, needling.month
)

select * from final
order by clinic_id, month
