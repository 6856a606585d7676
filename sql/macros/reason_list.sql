-- Rejection reason for a ';'-list with an unknown element or no element at all.
create or replace temp macro reason_list(column_name, value, allowed) as
    reason_list_parsed(column_name, value, parse_list(value), allowed)
