-- Type one night's needle-site rows and give each row its rejection reasons (an empty list: the row loads).
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
        list_filter([
            reason_missing('session_id', session_id),
            reason_missing('site', site),
            reason_missing('side', side),
            reason_enum('side', side, ['left', 'right', 'midline']),
            reason_int('needles', needles, 1, null),
        ], lambda reason: reason is not null) as _own_reasons,
    from source
),

deduplicated as (
    -- A spot listed twice for one session in one file is an input error: the first valid listing stands.
    select
        checked.*,
        case
            when len(_own_reasons) = 0 and row_number() over (
                partition by _file_id, trim(session_id), lower(trim(site)), lower(trim(side)), len(_own_reasons) = 0
                order by _line
            ) > 1
                then list_append(_own_reasons, 'site: ' || shown_value(site) || ' (side ' || shown_value(side)
                    || ') is listed again for session ' || shown_value(session_id)
                    || ' in this file; the first listing stands')
            else _own_reasons
        end as _reasons,
    from checked
),

final as (
    select
        trim(session_id) as session_id,
        lower(trim(site)) as site,
        lower(trim(side)) as side,
        try_cast(trim(needles) as integer) as needles,
        _drop,
        _file_id,
        _line,
        _reasons,
        case when len(_reasons) > 0 then to_json(struct_pack(
            session_id := session_id,
            site := site,
            side := side,
            needles := needles
        )) end as _record,
    from deduplicated
)

select * from final
