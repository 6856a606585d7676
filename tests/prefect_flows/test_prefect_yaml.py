"""prefect.yaml (a process work pool) declares the same deployment as `clinic-outcomes serve`: flow, schedule,
parameters, one run at a time. Read with Prefect's own model of the file, so a key Prefect does not know fails.

Mutants tried: collision_strategy ENQUEUE in the file; the cron changed to "0 3 * * *"; a parameter dropped;
the entrypoint naming a flow that does not exist.
"""

from __future__ import annotations

import importlib

import yaml

import flow_helpers as fh
from flows.deployment import build_deployment


def _prefect_yaml():
    from prefect.cli.deploy._models import PrefectYamlModel

    document = yaml.safe_load((fh.REPO / "prefect.yaml").read_text())
    model = PrefectYamlModel.model_validate(document)
    (deployment,) = model.deployments
    return document, deployment


def test_the_file_is_prefects_and_names_our_flow():
    document, deployment = _prefect_yaml()
    assert document["prefect-version"] == importlib.import_module("prefect").__version__
    module, _, attribute = deployment.entrypoint.partition(":")
    assert module == "flows/nightly.py" and (fh.REPO / module).is_file()
    flow = getattr(importlib.import_module(module[:-3].replace("/", ".")), attribute)
    assert flow.name == "clinic-outcomes-nightly"
    assert deployment.work_pool.name == "clinic-outcomes"
    assert document["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $CLINIC_OUTCOMES_REPO }}"}}
    ]


def test_same_schedule_parameters_and_concurrency_as_serve(tmp_path):
    _, declared = _prefect_yaml()
    served = build_deployment(tmp_path / "e", tmp_path / "w.duckdb", tmp_path / "r")
    (schedule,) = [s.schedule for s in served.schedules]
    assert [(s.cron, s.timezone, s.active) for s in declared.schedules] == [(schedule.cron, schedule.timezone, True)]
    assert set(declared.parameters) == set(served.parameters)
    assert all(value == f"{{{{ $CLINIC_OUTCOMES_{name.upper()} }}}}" for name, value in declared.parameters.items())
    limit = declared.concurrency_limit
    assert (limit.limit, limit.collision_strategy) == (
        served.concurrency_limit, served.concurrency_options.collision_strategy.value
    ) == (1, "CANCEL_NEW")
    assert (declared.name, declared.description, declared.tags) == (served.name, served.description, served.tags)
