-- The night's valid pain checkins rows, one per checkin_id: the version that would win among them.
create or replace temp view latest_incoming_pain_checkins as
select * exclude (_reasons, _record, _line)
from staged_pain_checkins
where len(_reasons) = 0
qualify row_number() over (partition by checkin_id order by _drop desc, _file_id desc, _line desc) = 1
