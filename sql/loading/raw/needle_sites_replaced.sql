-- needle_sites are re-sent whole per session: drop every stored site row of a session for which this night
-- brought site rows from a later drop (or a later-loaded file of the same drop).
-- inputs (temp tables and views Python or an earlier file fills; tests/test_sql_inputs.py checks them):
--   staged_needle_sites: session_id, site, side, needles, _drop, _file_id, _line, _reasons, _record
delete from raw.needle_sites as stored
using (
    select session_id, max((_drop, _file_id)) as newest
    from staged_needle_sites
    where _reasons is null
    group by session_id
) as incoming
where stored.session_id = incoming.session_id
    and (stored._drop, stored._file_id) < incoming.newest
