-- Rejection reason for a value that is not a bool (true/false, yes/no, 1/0).
create or replace temp macro reason_bool(column_name, value) as
    case
        when value is not null and parse_bool(value) is null
            then column_name || ': ' || shown_value(value) || ' is not true/false, yes/no or 1/0'
    end
