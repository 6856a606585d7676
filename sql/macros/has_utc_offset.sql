-- An ISO 8601 timestamp that ends in Z or a UTC offset is an exact instant (exports.md).
-- The time part is required before the offset, so a plain date such as 2026-11-02 is not read as "-02".
create or replace temp macro has_utc_offset(value) as
    regexp_matches(trimmed(value), '\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*([Zz]|[+-]\d{2}(:?\d{2})?)$')
