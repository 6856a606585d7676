-- Type one night's needle-site rows and give each row its rejection reasons (an empty list: the row loads).
create or replace temp table staged_needle_sites as
with
source as (
    select * from incoming_needle_sites
),

numbered as (
    -- A spot listed twice for one session in one file is an input error: the first listing stands.
    select
        source.*,
        _line <> first_value(_line) over spot_in_file as _repeated,
    from source
    window spot_in_file as (
        partition by _file_id, trim(session_id), lower(trim(site)), lower(trim(side))
        order by _line
    )
),

checked as (
    select
        numbered.*,
        list_filter([
            reason_missing('session_id', session_id),
            reason_missing('site', site),
            reason_missing('side', side),
            reason_enum('side', side, ['left', 'right', 'midline']),
            reason_int('needles', needles, 1, null),
            case
                when _repeated and session_id is not null and site is not null and side is not null
                    then 'site: ' || shown_value(site) || ' (side ' || shown_value(side)
                        || ') is listed again for session ' || shown_value(session_id)
                        || ' in this file; the first listing stands'
            end,
        ], lambda reason: reason is not null) as _reasons,
    from numbered
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
    from checked
)

select * from final
