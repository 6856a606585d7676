-- Rejection reason for a value that is not a whole number, or lies outside [low, high] (high null: no upper bound).
-- The pattern check comes first: a cast alone would round '5.5' and read '1e1' as 10.
create or replace temp macro reason_int(column_name, value, low, high) as
    case
        when value is null then null
        when not regexp_matches(trimmed(value), '^[+-]?[0-9]+$') or try_cast(trimmed(value) as bigint) is null
            then column_name || ': ' || shown_value(value) || ' is not a whole number'
        when try_cast(trimmed(value) as bigint) < low
            or try_cast(trimmed(value) as bigint) > coalesce(high, try_cast(trimmed(value) as bigint))
            then column_name || ': ' || shown_value(value) || ' is out of range '
                || low::varchar || case when high is null then ' or more' else '-' || high::varchar end
    end
