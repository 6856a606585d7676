-- Age band at a date (under 18, 18-29, 30-39, ..., 70-79, 80+); the date of birth itself is never stored.
create or replace temp macro age_band(birth_date, at_date) as
    case
        when birth_date is null or birth_date > at_date then null
        when age_years(birth_date, at_date) < 18 then 'under 18'
        when age_years(birth_date, at_date) < 30 then '18-29'
        when age_years(birth_date, at_date) >= 80 then '80+'
        else (age_years(birth_date, at_date) // 10 * 10)::varchar
            || '-' || (age_years(birth_date, at_date) // 10 * 10 + 9)::varchar
    end
