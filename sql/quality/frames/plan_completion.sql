-- The rows GX suite `plan_completion` validates (R2): every plan's completion,
-- straight from quality.plan_completion.
with

plan_completion as (
    select * from quality.plan_completion
),

final as (
    select
        plan_id,
        completion,
    from plan_completion
)

select * from final
