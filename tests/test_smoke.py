"""Every module imports, every SQL file parses as one statement, every suite loads."""

import importlib
import json
import pkgutil
from pathlib import Path

import duckdb
import pytest

import clinic_outcomes
from clinic_outcomes.warehouse import EXPECTATIONS_DIR, SQL_DIR

REPO = Path(__file__).resolve().parents[1]
MODULES = sorted(
    [m.name for m in pkgutil.walk_packages(clinic_outcomes.__path__, "clinic_outcomes.")]
    + [f"flows.{p.stem}" for p in (REPO / "flows").glob("*.py")]
)
SQL_FILES = sorted(p for p in SQL_DIR.rglob("*.sql"))
SUITES = sorted(EXPECTATIONS_DIR.glob("*.json"))


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name):
    importlib.import_module(name)


def test_every_flows_module_uses_prefect():
    for path in (REPO / "flows").glob("*.py"):
        assert "from prefect" in path.read_text() or "import prefect" in path.read_text(), path


def test_no_module_outside_tests_is_over_700_lines():
    for path in [*(REPO / "src").rglob("*.py"), *(REPO / "flows").glob("*.py")]:
        assert len(path.read_text().splitlines()) <= 700, path


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: str(p.relative_to(SQL_DIR)))
def test_sql_file_parses_as_one_statement(path):
    statements = duckdb.extract_statements(path.read_text(encoding="utf-8"))
    assert len(statements) == 1, f"{path}: {len(statements)} statements"


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.name)
def test_suite_loads(path):
    from clinic_outcomes.validation.validate import load_suites

    suite = json.loads(path.read_text())
    assert suite["expectations"], path
    assert path.stem in {s.name for s in load_suites()}
