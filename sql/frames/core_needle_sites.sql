-- The rows GX suite `core_needle_sites` validates: one per site row, with
-- whether its session is known and is a completed dry-needling session
-- (null when the session is unknown; that is the other check).
-- The batch (validation/validate.py sets the variables; unset means every row): every site row on a full
-- validation; on a night, the site rows the night wrote (changed_in_run) and those of the sessions it wrote
-- (the session checks read the session). rows_with_site_key counts each batch key (session, site, side;
-- nulls equal, as GX's compound uniqueness counts them) over the whole table, so a key the night repeats from
-- an earlier night's row is caught though that row is not in the batch.
with

needle_sites as (
    select * from core.needle_sites
),

sessions as (
    select * from core.sessions
),

night_sessions as (
    select
        session_id,
    from sessions
    where changed_in_run = getvariable('validation_run')
),

batch as (
    select *
    from needle_sites
    where coalesce(getvariable('validation_full'), true)
        or needle_sites.changed_in_run = getvariable('validation_run')
        or needle_sites.session_id in (select session_id from night_sessions)
),

key_rows as (
    select
        session_id,
        site,
        side,
        count(*) as rows_with_site_key,
    from needle_sites
    where session_id in (select session_id from batch) or session_id is null
    group by all
),

session_kinds as (
    -- one row per session_id even if core.sessions repeats one (core_sessions reports that)
    select
        session_id,
        bool_or(status = 'completed' and list_contains(therapies, 'dry_needling')) as is_needling,
    from sessions
    where session_id in (select session_id from batch)
    group by session_id
),

final as (
    select
        batch.session_id,
        batch.site,
        batch.side,
        batch.needles,
        key_rows.rows_with_site_key,
        session_kinds.session_id is not null as session_is_known,
        case when session_kinds.session_id is not null then
            coalesce(session_kinds.is_needling, false)
        end as session_is_needling,
    from batch
    left join session_kinds on session_kinds.session_id = batch.session_id
    left join key_rows
        on key_rows.session_id is not distinct from batch.session_id
        and key_rows.site is not distinct from batch.site
        and key_rows.side is not distinct from batch.side
)

select * from final
