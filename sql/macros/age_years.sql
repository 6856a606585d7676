-- Completed years of age at a date.
create or replace temp macro age_years(birth_date, at_date) as
    date_diff('year', birth_date, at_date)
    - case when strftime(at_date, '%m%d') < strftime(birth_date, '%m%d') then 1 else 0 end
