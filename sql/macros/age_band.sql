-- Age band at a date: the band of seed age_bands (sql/seeds/age_bands.csv) whose min_years is the highest not
-- above the completed years of age; the date of birth itself is never stored.
create or replace temp macro age_band(birth_date, at_date) as
    case
        when birth_date is null or birth_date > at_date then null
        else seed_age_bands()[
            len(list_filter(seed_age_bands_min_years(), lambda min_years: min_years <= age_years(birth_date, at_date)))
        ]
    end
