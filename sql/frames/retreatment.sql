-- The rows GX suite `retreatment` validates (R1): every spot of every needling
-- session, with the same `retreated_too_soon` that quality.retreatment_flags keeps.
with

checks as (
    select * from quality.retreatment_checks
),

final as (
    select
        retreated_too_soon,
    from checks
)

select * from final
