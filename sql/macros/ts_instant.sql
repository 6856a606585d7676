-- The instant of a timestamp that carries its own offset; null otherwise.
create or replace temp macro ts_instant(value) as
    case when has_utc_offset(value) then try_cast(trimmed(value) as timestamptz) end
