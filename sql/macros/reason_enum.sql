-- Rejection reason for a value outside its enum (matched case-insensitively).
-- list_position, not list_contains: the optimizer turns list_contains over a constant list into a join per
-- column, which costs about twice as much over a million rows.
create or replace temp macro reason_enum(column_name, value, allowed) as
    case
        when value is not null and list_position(allowed, lower(trimmed(value))) is null
            then column_name || ': ' || shown_value(value) || ' is not one of ' || array_to_string(allowed, ', ')
    end
