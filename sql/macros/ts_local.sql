-- The wall-clock time of a timestamp without offset; null otherwise (it is resolved with a zone later).
create or replace temp macro ts_local(value) as
    case when not has_utc_offset(value) then try_cast(trimmed(value) as timestamp) end
