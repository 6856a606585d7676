-- Rejection reason for a ';'-list with an unknown element or no element at all, given the list as parsed
-- (parse_list(value)), so that a staging query parses each value once.
create or replace temp macro reason_list_parsed(column_name, value, pieces, allowed) as
    case
        when value is null then null
        when len(pieces) = 0 then column_name || ': ' || shown_value(value) || ' holds no value'
        when not list_has_all(allowed, pieces)
            then column_name || ': ' || shown_value(value) || ' has values not among ' || array_to_string(allowed, ', ')
    end
