-- list per exports.md: values separated by ';', lower-cased; empty pieces (a trailing ';') are dropped.
-- A plain value (letters and underscores between single ';', no spaces) is split directly: the same list,
-- without the per-piece trim and filter that other values need.
create or replace temp macro parse_list(value) as
    case
        when regexp_full_match(value, '[A-Za-z_]+(;[A-Za-z_]+)*') then string_split(lower(value), ';')
        else list_filter(
            list_transform(string_split(lower(trimmed(value)), ';'), lambda piece: trimmed(piece)), lambda piece: piece <> ''
        )
    end
