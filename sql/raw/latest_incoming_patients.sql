-- The night's valid patients rows, one per patient_key: the version that would win among them.
create or replace temp view latest_incoming_patients as
select * exclude (_reasons, _record, _line)
from staged_patients
where len(_reasons) = 0
qualify row_number() over (
    partition by patient_key order by updated_at desc, _drop desc, _file_id desc, _line desc
) = 1
