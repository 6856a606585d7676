-- Rejection reason for a value that is not an ISO 8601 timestamp, given its two readings
-- (ts_instant(value), ts_local(value)), so that a staging query parses each value once.
create or replace temp macro reason_timestamp_parsed(column_name, value, instant, local) as
    case
        when value is not null and instant is null and local is null
            then column_name || ': ' || shown_value(value) || ' is not an ISO 8601 timestamp'
    end
