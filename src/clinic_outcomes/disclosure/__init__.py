"""Disclosure control (R7): which published cells to suppress, and the auditor that proves it is enough."""

from clinic_outcomes.disclosure.suppression import (
    COMPLEMENTARY,
    PRIMARY,
    Cell,
    DisclosureError,
    Equation,
    audit,
    protect,
)

__all__ = ["COMPLEMENTARY", "PRIMARY", "Cell", "DisclosureError", "Equation", "audit", "protect"]
