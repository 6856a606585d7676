-- Rejection reason for a value that is not a YYYY-MM-DD date; withheld values (never stored) are not echoed.
create or replace temp macro reason_date(column_name, value, withhold) as
    case
        when value is not null and (
            not regexp_matches(trimmed(value), '^\d{4}-\d{2}-\d{2}$') or try_cast(trimmed(value) as date) is null
        )
            then column_name || ': '
                || case when withhold then 'value withheld (never stored)' else shown_value(value) end
                || ' is not a YYYY-MM-DD date'
    end
