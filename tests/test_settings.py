"""Settings: every default without a file; a wrong type or unknown name refused, naming the setting.

Mutant tried: warehouse.storage_version not asked of DuckDB (only its pattern checked): the "v1.9.0" case fails.
"""

from __future__ import annotations

import re

import pytest

from clinic_outcomes.settings import Rules, Schedule, Settings, SettingsError, load_settings, parse_settings

EVERY_SETTING = """
timezone = "America/Chicago"

[rules]
retreatment_window_hours = 48
plan_weeks = 8
mcid_points = 1.5
min_cell_patients = 5
relief_followup_days = 28

[clinics.clinic_nyc]
timezone = "America/New_York"
name = "Manhattan <Midtown> & Co"

[clinics.clinic_sea]
timezone = "America/Los_Angeles"

[schedule]
cron = "30 3 * * 1-5"
timezone = "Europe/Berlin"

[warehouse]
memory_limit = "2.5GiB"
storage_version = "v1.4.0"

[validation]
full_on = "Wednesday"
beside_metrics_up_to = 0

[report]
pdf_processes = 3
"""


def _write(tmp_path, text: str):
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path


def test_no_file_means_every_default_of_rules_md():
    settings = load_settings(None)
    assert settings == Settings()
    assert settings.rules == Rules(
        retreatment_window_hours=72.0, plan_weeks=6, mcid_points=2.0, min_cell_patients=11, relief_followup_days=42
    )
    assert (settings.timezone, settings.clinic_timezones) == ("UTC", {})
    assert settings.schedule == Schedule(cron="0 2 * * *", timezone=None)
    assert settings.schedule_timezone == "UTC"
    # the previous DuckDB release line (1.5) must open the published warehouse (tests/publishing/test_storage_version.py)
    assert settings.storage_version == "v1.5.0"
    # a full validation of more than 2M sessions runs before the metrics (memory at 10M: settings.py)
    assert settings.validate_beside_metrics_up_to == 2_000_000


def test_an_empty_file_means_every_default(tmp_path):
    assert load_settings(_write(tmp_path, "")) == Settings()


def test_every_setting_is_read(tmp_path):
    settings = load_settings(_write(tmp_path, EVERY_SETTING))
    assert settings == Settings(
        rules=Rules(retreatment_window_hours=48.0, plan_weeks=8, mcid_points=1.5, min_cell_patients=5, relief_followup_days=28),
        timezone="America/Chicago",
        clinic_timezones={"clinic_nyc": "America/New_York", "clinic_sea": "America/Los_Angeles"},
        schedule=Schedule(cron="30 3 * * 1-5", timezone="Europe/Berlin"),
        memory_limit="2.5GiB",
        clinic_names={"clinic_nyc": "Manhattan <Midtown> & Co"},
        storage_version="v1.4.0",
        full_validation_on="wednesday",
        validate_beside_metrics_up_to=0,
        pdf_processes=3,
    )
    assert (settings.clinic_name("clinic_nyc"), settings.clinic_name("clinic_sea")) == (
        "Manhattan <Midtown> & Co",
        "clinic_sea",
    )
    assert isinstance(settings.rules.retreatment_window_hours, float)
    assert settings.schedule_timezone == "Europe/Berlin"


@pytest.mark.parametrize(
    ("clinic_id", "zone"),
    [("clinic_nyc", "America/New_York"), ("clinic_sea", "America/Los_Angeles"), ("clinic_elsewhere", "America/Chicago"), (None, "America/Chicago")],
)
def test_a_clinic_not_named_uses_the_default_zone(tmp_path, clinic_id, zone):
    assert load_settings(_write(tmp_path, EVERY_SETTING)).timezone_of(clinic_id) == zone


def test_the_timezone_option_replaces_only_the_default_zone(tmp_path):
    settings = load_settings(_write(tmp_path, EVERY_SETTING)).with_timezone("Asia/Tokyo")
    assert (settings.timezone, settings.timezone_of("clinic_nyc"), settings.timezone_of("clinic_x")) == (
        "Asia/Tokyo",
        "America/New_York",
        "Asia/Tokyo",
    )
    assert Settings().with_timezone(None) == Settings()


# the TOML given -> the setting the refusal must name
REFUSED = [
    # wrong type
    ('[rules]\nplan_weeks = "six"', "rules.plan_weeks"),
    ("[rules]\nplan_weeks = 6.5", "rules.plan_weeks"),
    ("[rules]\nmin_cell_patients = true", "rules.min_cell_patients"),
    ('[rules]\nmcid_points = "2"', "rules.mcid_points"),
    ("[rules]\nretreatment_window_hours = [72]", "rules.retreatment_window_hours"),
    ("[rules]\nrelief_followup_days = 42.0", "rules.relief_followup_days"),
    ("rules = 5", "rules"),
    ("timezone = 5", "timezone"),
    ('clinics = "clinic_nyc"', "clinics"),
    ('[clinics]\nclinic_nyc = "America/New_York"', "clinics.clinic_nyc"),
    ("[clinics.clinic_nyc]\ntimezone = 1", "clinics.clinic_nyc.timezone"),
    ("[schedule]\ncron = 2", "schedule.cron"),
    ('[schedule]\ncron = "0 2 * *"', "schedule.cron"),
    ("[schedule]\ntimezone = false", "schedule.timezone"),
    ('[warehouse]\nmemory_limit = "lots"', "warehouse.memory_limit"),
    ("[warehouse]\nmemory_limit = 4", "warehouse.memory_limit"),
    ('[warehouse]\nstorage_version = "1.5"', "warehouse.storage_version"),
    ("[warehouse]\nstorage_version = 15", "warehouse.storage_version"),
    ('[warehouse]\nstorage_version = "v1.9.0"', "warehouse.storage_version"),  # no such DuckDB
    ("[warehouse]\nstorage_version = \"v1.5.0'; attach 'x'\"", "warehouse.storage_version"),
    ('[clinics.clinic_nyc]\nname = ""', "clinics.clinic_nyc.name"),
    ("[clinics.clinic_nyc]\nname = 3", "clinics.clinic_nyc.name"),
    ('[warehouse]\nthreads = 2', "threads"),
    ('[validation]\nfull_on = "someday"', "validation.full_on"),
    ("[validation]\nfull_on = 0", "validation.full_on"),
    ("[validation]\nbeside_metrics_up_to = -1", "validation.beside_metrics_up_to"),
    ("[validation]\nbeside_metrics_up_to = 2e6", "validation.beside_metrics_up_to"),
    ('[validation]\nbeside_metrics_up_to = "2M"', "validation.beside_metrics_up_to"),
    ("[validation]\nbeside_metrics_up_to = true", "validation.beside_metrics_up_to"),
    ('validation = "sunday"', "validation"),
    ('[validation]\nfull_day = "sunday"', "full_day"),
    ('[report]\npdf_processes = "auto"', "report.pdf_processes"),
    ("[report]\npdf_processes = -1", "report.pdf_processes"),
    ("[report]\npdf_processes = true", "report.pdf_processes"),
    ("[report]\nprocesses = 2", "processes"),
    # out of range
    ("[rules]\nplan_weeks = 0", "rules.plan_weeks"),
    ("[rules]\nplan_weeks = 53", "rules.plan_weeks"),
    ("[rules]\nmcid_points = -1", "rules.mcid_points"),
    # unknown names
    ('timezones = "UTC"', "timezones"),
    ("[rules]\nmcid = 2", "mcid"),
    ("[rules]\nretreatment_window_hour = 72", "retreatment_window_hour"),
    ('[clinics.clinic_nyc]\ntz = "America/New_York"', "tz"),
    ('[schedule]\nwhen = "nightly"', "when"),
    ("[report]\ntitle = 'x'", "report"),
    # unknown time zones
    ('timezone = "Mars/Olympus_Mons"', "timezone"),
    ('timezone = "EST-5"', "timezone"),
    ('[clinics.clinic_nyc]\ntimezone = "America/New_Yrok"', "clinics.clinic_nyc.timezone"),
    ('[schedule]\ntimezone = "Nowhere/City"', "schedule.timezone"),
]


@pytest.mark.parametrize(("toml", "setting"), REFUSED, ids=[t.replace("\n", " ") for t, _ in REFUSED])
def test_a_wrong_setting_is_refused_with_a_message_naming_it(tmp_path, toml, setting):
    with pytest.raises(SettingsError, match=re.escape(setting)):
        load_settings(_write(tmp_path, toml))


def test_an_unknown_zone_for_the_timezone_option_is_refused():
    with pytest.raises(SettingsError, match="'timezone'.*Atlantis/Capital"):
        Settings().with_timezone("Atlantis/Capital")


def test_a_missing_file_is_refused_with_its_path(tmp_path):
    with pytest.raises(SettingsError, match=re.escape(str(tmp_path / "nope.toml"))):
        load_settings(tmp_path / "nope.toml")


def test_a_file_that_is_not_toml_is_refused(tmp_path):
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(_write(tmp_path, "[rules\nplan_weeks = 6"))


def test_parse_settings_takes_a_parsed_document():
    assert parse_settings({"rules": {"plan_weeks": 4}}).rules.plan_weeks == 4
