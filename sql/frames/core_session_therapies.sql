-- The rows GX suite `core_session_therapies` validates: one per therapy listed
-- by a session, so the therapy value set reads like any other in expectations/.
with

sessions as (
    select * from core.sessions
),

final as (
    select
        unnest(therapies) as therapy,
    from sessions
)

select * from final
