-- The night's valid sessions rows, one per session_id: the version that would win among them.
create or replace temp view latest_incoming_sessions as
select * exclude (_reasons, _record, _line)
from staged_sessions
where len(_reasons) = 0
qualify row_number() over (
    partition by session_id order by updated_at desc, _drop desc, _file_id desc, _line desc
) = 1
