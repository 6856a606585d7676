-- Add this night's valid site rows of each session, taken from the newest file that sent that session's sites,
-- unless the warehouse already holds that session's sites from a newer file.
-- inputs (temp tables and views Python or an earlier file fills; tests/test_sql_inputs.py checks them):
--   staged_needle_sites: session_id, site, side, needles, _drop, _file_id, _line, _reasons, _record
insert into raw.needle_sites
with
newest_incoming_file as (
    -- per session, the file (newest drop, then newest file) whose site rows stand; a grouping, not a window
    select session_id, max((_drop, _file_id)) as newest, arg_max(_file_id, (_drop, _file_id)) as newest_file_id
    from staged_needle_sites
    where _reasons is null
    group by session_id
),

newest_stored as (
    -- only the sessions this night sent sites for: the stored table is not grouped whole every night
    select stored.session_id, max((stored._drop, stored._file_id)) as newest
    from raw.needle_sites as stored
    semi join newest_incoming_file on newest_incoming_file.session_id = stored.session_id
    group by stored.session_id
),

standing as (
    select newest_incoming_file.session_id, newest_incoming_file.newest_file_id
    from newest_incoming_file
    left join newest_stored on newest_stored.session_id = newest_incoming_file.session_id
    where newest_stored.newest is null or newest_stored.newest < newest_incoming_file.newest
),

final as (
    select staged_needle_sites.* exclude (_reasons, _record, _line)
    from staged_needle_sites
    semi join standing
        on standing.session_id = staged_needle_sites.session_id
        and standing.newest_file_id = staged_needle_sites._file_id
    where staged_needle_sites._reasons is null
)

select * from final
