-- list per exports.md: values separated by ';', lower-cased; empty pieces (a trailing ';') are dropped.
create or replace temp macro parse_list(value) as
    list_filter(list_transform(string_split(lower(trim(value)), ';'), lambda piece: trim(piece)), lambda piece: piece <> '')
