-- Type one night's needle-site rows and give each row its rejection reasons (null: the row loads).
-- inputs (temp tables and views Python or an earlier file fills; tests/test_sql_inputs.py checks them):
--   incoming_needle_sites: session_id, site, side, needles, _drop, _file_id, _line
create or replace temp table staged_needle_sites as
with
first_rows as (
    select _file_id, min(rowid) as first_rowid from incoming_needle_sites group by _file_id
),

source as (
    -- CSV rows were appended in file order: a row's line is its place in its file + 1 (the header).
    -- Physical line numbers for files with a rejection are settled after staging (blank lines, multi-line fields).
    select
        incoming.* exclude (_line),
        coalesce(incoming._line, incoming.rowid - first_rows.first_rowid + 2) as _line,
    from incoming_needle_sites as incoming
    inner join first_rows on first_rows._file_id = incoming._file_id
),

checked as (
    select
        source.*,
        trimmed(session_id) as session_key,
        lower(trimmed(site)) as site_key,
        lower(trimmed(side)) as side_key,
        hash(session_key, site_key, side_key) as spot_hash,
        -- every reason of the row, '; '-separated (concat_ws skips the checks that pass); null: the row loads
        nullif(concat_ws('; ',
            reason_missing('session_id', session_id),
            reason_control('session_id', session_id, false),
            reason_missing('site', site),
            reason_control('site', site, false),
            reason_missing('side', side),
            reason_enum('side', side, seed_sides()),
            reason_int('needles', needles, 1, null)
        ), '') as _own_reasons,
    from source
),

repeated_hashes as (
    -- A spot listed twice for one session in one file is an input error: the first valid listing stands.
    -- Repeats are rare: find candidate (file, spot hash) pairs by grouping one integer, then check those exactly.
    select _file_id, spot_hash
    from checked
    where _own_reasons is null
    group by _file_id, spot_hash
    having count(*) > 1
),

listed_again as (
    select checked._file_id, session_key, site_key, side_key, min(_line) as first_line
    from checked
    semi join repeated_hashes
        on repeated_hashes._file_id = checked._file_id and repeated_hashes.spot_hash = checked.spot_hash
    where _own_reasons is null
    group by checked._file_id, session_key, site_key, side_key
    having count(*) > 1
),

deduplicated as (
    select
        checked.*,
        case
            when checked._line > listed_again.first_line
                then 'site: ' || shown_value(site) || ' (side ' || shown_value(side)
                    || ') is listed again for session ' || shown_value(session_id)
                    || ' in this file; the first listing stands'
            else _own_reasons
        end as _reasons,
    from checked
    left join listed_again
        on listed_again._file_id = checked._file_id
        and listed_again.session_key = checked.session_key
        and listed_again.site_key = checked.site_key
        and listed_again.side_key = checked.side_key
        and checked._own_reasons is null
),

final as (
    select
        session_key as session_id,
        site_key as site,
        side_key as side,
        try_cast(trimmed(needles) as integer) as needles,
        _drop,
        _file_id,
        _line,
        _reasons,
        case when _reasons is not null then to_json(struct_pack(
            session_id := session_id,
            site := site,
            side := side,
            needles := needles
        )) end as _record,
    from deduplicated
)

select * from final
