-- Rejection reason for a ';'-list with an unknown element or no element at all.
create or replace temp macro reason_list(column_name, value, allowed) as
    case
        when value is null then null
        when len(parse_list(value)) = 0 then column_name || ': ' || shown_value(value) || ' holds no value'
        when len(list_filter(parse_list(value), lambda piece: not list_contains(allowed, piece))) > 0
            then column_name || ': ' || shown_value(value) || ' has values not among ' || array_to_string(allowed, ', ')
    end
