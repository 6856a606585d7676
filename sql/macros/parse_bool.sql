-- bool per exports.md: true/false, yes/no, 1/0, any case; null for anything else.
create or replace temp macro parse_bool(value) as
    case
        when lower(trimmed(value)) in ('true', 'yes', '1') then true
        when lower(trimmed(value)) in ('false', 'no', '0') then false
    end
