-- The rows GX suite `plan_completion` validates (R2): every plan's completion,
-- straight from quality.plan_completion (only the column the suite reads).
-- Every row on every night: R2 depends on the as-of date, so the night rebuilds quality.plan_completion
-- whole and every row is one the night wrote (the suite's meta says scope "full").
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
