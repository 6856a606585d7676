-- A value as quoted in a rejection reason: at most 60 characters, so a reason stays one readable line, with
-- control and bidirectional-formatting characters written as <U+XXXX> (never raw).
create or replace temp macro shown_value(value) as
    '''' || escaped_controls(case when length(value) > 60 then left(value, 57) || '...' else value end) || ''''
