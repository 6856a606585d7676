"""The time zones the local-date tests sweep: every offset from UTC-11 to UTC+14 that matters."""

# UTC-11 .. UTC+14; half and quarter hours; DST north (US, EU) and south (Lord Howe's half-hour DST,
# Auckland, Chatham at +12:45/+13:45), and Newfoundland at -03:30 with DST.
ZONES = (
    "Pacific/Pago_Pago",
    "America/Los_Angeles",
    "America/St_Johns",
    "UTC",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Tokyo",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Pacific/Kiritimati",
)
