-- Merge one night's valid patient rows into raw.patients: the latest updated_at wins; on a tie, the later drop
-- (then the later-loaded file, then the later line of the same file).
merge into raw.patients as target
using latest_incoming_patients as incoming
on target.patient_key = incoming.patient_key
when matched and (
    incoming.updated_at > target.updated_at
    or (incoming.updated_at = target.updated_at and incoming._drop > target._drop)
    or (incoming.updated_at = target.updated_at and incoming._drop = target._drop and incoming._file_id > target._file_id)
) then update set *
when not matched then insert *
