"""Until clinic_outcomes.disclosure.suppression is merged into this branch, the report's tests run with the
primary-only stand-in of report_fixtures in its place (render_report imports it by name)."""

from __future__ import annotations

import sys
import types

import pytest

import report_fixtures as rf
from clinic_outcomes.report.cells import SUPPRESSION_MODULE


@pytest.fixture(autouse=True, scope="session")
def suppression_available():
    if rf.suppression_module() is not rf.PrimaryOnlySuppression:
        yield
        return
    package = types.ModuleType("clinic_outcomes.disclosure")
    module = types.ModuleType(SUPPRESSION_MODULE)
    module.Cell, module.Equation, module.protect = (
        rf.PrimaryOnlySuppression.Cell, rf.PrimaryOnlySuppression.Equation, rf.PrimaryOnlySuppression.protect)
    sys.modules.setdefault("clinic_outcomes.disclosure", package)
    sys.modules[SUPPRESSION_MODULE] = module
    yield
    sys.modules.pop(SUPPRESSION_MODULE, None)
