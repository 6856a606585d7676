-- The rows GX suite `plan_completion` validates (R2): every plan's completion,
-- straight from quality.plan_completion (only the column the suite reads).
with

plan_completion as (
    select * from quality.plan_completion
),

final as (
    select
        completion,
    from plan_completion
)

select * from final
