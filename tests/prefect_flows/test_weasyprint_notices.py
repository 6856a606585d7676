"""The night's log does not carry WeasyPrint's HarfBuzz-Subset notices (one per font of every PDF), and still
carries every other WeasyPrint warning. The filter is installed when the flow module is imported.

Mutant tried: the filter not installed (the notice shows; the first test fails).
"""

from __future__ import annotations

import logging

import flows.nightly  # noqa: F401  (installs the filter, as every night does)


def test_the_harfbuzz_notice_is_dropped_and_other_warnings_kept(caplog):
    logger = logging.getLogger("weasyprint")
    with caplog.at_level(logging.WARNING, logger="weasyprint"):
        logger.warning(
            'Using fontTools instead of HarfBuzz-Subset for font "%s". This will be unsupported in future versions '
            "of WeasyPrint. Please install HarfBuzz-Subset >= 4.1.0 with your package manager.", "DejaVu Sans",
        )
        logger.warning("Ignored `color: bluish` at 3:1, invalid value.")
    assert [r.getMessage() for r in caplog.records if r.name == "weasyprint"] == [
        "Ignored `color: bluish` at 3:1, invalid value."
    ]


def test_the_filtered_text_is_the_one_weasyprint_logs():
    """Guards an upstream rewording. (On a machine with libharfbuzz-subset WeasyPrint never logs it at all, so a
    real PDF cannot show the filter at work everywhere; the text is checked against WeasyPrint's source instead.)"""
    import inspect

    from weasyprint.pdf import fonts

    from clinic_outcomes.runtime import _HARFBUZZ_NOTICE

    assert f"'{_HARFBUZZ_NOTICE} for font" in inspect.getsource(fonts)
