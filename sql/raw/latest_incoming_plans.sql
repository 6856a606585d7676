-- The night's valid plans rows, one per plan_id: the version that would win among them.
create or replace temp view latest_incoming_plans as
select * exclude (_reasons, _record, _line)
from staged_plans
where len(_reasons) = 0
qualify row_number() over (
    partition by plan_id order by updated_at desc, _drop desc, _file_id desc, _line desc
) = 1
