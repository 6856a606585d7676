-- core.needle_sites rows: the current site rows of each session (a later drop's rows replaced earlier ones in raw).
-- The rows loaded after file getvariable('core_since_file_id') (0: every row): a session's site rows all come
-- from one file, so these are every site row of each session whose sites changed; build_core puts them in
-- place of that session's rows.
with
source as (
    select * from raw.needle_sites
    where _file_id > getvariable('core_since_file_id')
),

final as (
    select
        session_id,
        site,
        side,
        needles,
        getvariable('core_run_id')::integer as changed_in_run,
    from source
)

select * from final
