-- A value as quoted in a rejection reason: at most 60 characters, so a reason stays one readable line.
create or replace temp macro shown_value(value) as
    '''' || case when length(value) > 60 then left(value, 57) || '...' else value end || ''''
