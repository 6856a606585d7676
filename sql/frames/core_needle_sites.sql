-- The rows GX suite `core_needle_sites` validates: one per site row, with
-- whether its session is known and is a completed dry-needling session
-- (null when the session is unknown; that is the other check).
with

needle_sites as (
    select * from core.needle_sites
),

sessions as (
    select * from core.sessions
),

session_kinds as (
    -- one row per session_id even if core.sessions repeats one (core_sessions reports that)
    select
        session_id,
        bool_or(status = 'completed' and list_contains(therapies, 'dry_needling')) as is_needling,
    from sessions
    group by session_id
),

final as (
    select
        needle_sites.session_id,
        needle_sites.site,
        needle_sites.side,
        needle_sites.needles,
        session_kinds.session_id is not null as session_is_known,
        case when session_kinds.session_id is not null then
            coalesce(session_kinds.is_needling, false)
        end as session_is_needling,
    from needle_sites
    left join session_kinds on session_kinds.session_id = needle_sites.session_id
)

select * from final
