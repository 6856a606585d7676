-- Rejection reason for a required column left empty.
create or replace temp macro reason_missing(column_name, value) as
    case when value is null or trimmed(value) = '' then column_name || ': required value is missing' end
