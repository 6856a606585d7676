-- The night's valid sessions rows, one per session_id: the version that would win among them.
-- The winner's rowid per session_id by arg_max (a grouping), not a row_number() window: a window sorts every row.
-- (_file_id, _line) is unique, so there are no ties.
create or replace temp view latest_incoming_sessions as
select * exclude (_reasons, _record, _line)
from staged_sessions
semi join (
    select arg_max(rowid, (updated_at, _drop, _file_id, _line)) as winner
    from staged_sessions
    where _reasons is null
    group by session_id
) as winners on winners.winner = staged_sessions.rowid
