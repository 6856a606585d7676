-- The rows GX suite `core_session_therapies` validates: one per therapy listed
-- by a session, so the therapy value set reads like any other in expectations/.
-- The batch (validation/validate.py sets the variables; unset means every row): the therapies of every
-- session on a full validation, of the sessions the night wrote (changed_in_run) on a night.
with

sessions as (
    select * from core.sessions
),

batch as (
    select *
    from sessions
    where coalesce(getvariable('validation_full'), true)
        or sessions.changed_in_run = getvariable('validation_run')
),

final as (
    select
        unnest(batch.therapies) as therapy,
    from batch
)

select * from final
