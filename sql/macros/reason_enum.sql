-- Rejection reason for a value outside its enum (matched case-insensitively).
create or replace temp macro reason_enum(column_name, value, allowed) as
    case
        when value is not null and not list_contains(allowed, lower(trim(value)))
            then column_name || ': ' || shown_value(value) || ' is not one of ' || array_to_string(allowed, ', ')
    end
