-- Type one night's needle-site rows and give each row its rejection reasons (an empty list: the row loads).
create or replace temp table staged_needle_sites as
with
source as (
    select * from incoming_needle_sites
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
        ], lambda reason: reason is not null) as _reasons,
    from source
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
