-- core.needle_sites: the current site rows of each session (a later drop's rows replaced earlier ones in raw).
create or replace table core.needle_sites as
with
source as (
    select * from raw.needle_sites
),

final as (
    select
        session_id,
        site,
        side,
        needles,
    from source
)

select * from final
order by session_id, site, side
