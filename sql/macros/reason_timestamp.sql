-- Rejection reason for a value that is not an ISO 8601 timestamp.
create or replace temp macro reason_timestamp(column_name, value) as
    reason_timestamp_parsed(column_name, value, ts_instant(value), ts_local(value))
