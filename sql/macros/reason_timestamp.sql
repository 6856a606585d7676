-- Rejection reason for a value that is not an ISO 8601 timestamp.
create or replace temp macro reason_timestamp(column_name, value) as
    case
        when value is not null and ts_instant(value) is null and ts_local(value) is null
            then column_name || ': ' || shown_value(value) || ' is not an ISO 8601 timestamp'
    end
