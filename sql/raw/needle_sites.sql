-- Add this night's valid site rows of each session, taken from the newest file that sent that session's sites,
-- unless the warehouse already holds that session's sites from a newer file.
insert into raw.needle_sites
with
newest_incoming as (
    select * exclude (_reasons, _record, _line)
    from staged_needle_sites
    where len(_reasons) = 0
    qualify (_drop, _file_id) = max((_drop, _file_id)) over (partition by session_id)
),

newest_stored as (
    select session_id, max((_drop, _file_id)) as newest
    from raw.needle_sites
    group by session_id
),

final as (
    select newest_incoming.*
    from newest_incoming
    left join newest_stored on newest_stored.session_id = newest_incoming.session_id
    where newest_stored.newest is null or newest_stored.newest < (newest_incoming._drop, newest_incoming._file_id)
)

select * from final
