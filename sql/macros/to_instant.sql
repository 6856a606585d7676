-- A timestamp as an instant: its own offset, else its wall-clock time read in the given zone.
create or replace temp macro to_instant(value, zone) as
    coalesce(ts_instant(value), timezone(zone, ts_local(value)))
