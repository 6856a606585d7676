"""Scheduling (issue 6): the nightly run as a Prefect deployment on a cron schedule with an explicit time zone.

The fast tests build the deployment without a server; the slow one serves it
(`clinic-outcomes serve` in a subprocess) against a real local Prefect server,
reads it back through the Prefect client, triggers a run and sees it publish.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import flow_helpers as fh
from flow_helpers import prefect_server  # noqa: F401  (fixture)
from flows.deployment import build_deployment

NEW_YORK = ZoneInfo("America/New_York")


def next_runs(schedule, start: dt.datetime, n: int) -> list[dt.datetime]:
    """The schedule's next n run times, computed the way the Prefect server computes them."""
    from prefect.server.schemas.schedules import CronSchedule

    server_side = CronSchedule(cron=schedule.cron, timezone=schedule.timezone)
    return [d.astimezone(dt.timezone.utc) for d in asyncio.run(server_side.get_dates(n=n, start=start))]


def test_deployment_schedule_is_the_cron_in_the_given_zone(tmp_path):
    deployment = build_deployment(
        tmp_path / "exports", tmp_path / "warehouse.duckdb", tmp_path / "reports",
        cron="0 2 * * *", timezone="America/New_York", name="nightly",
    )
    (schedule,) = [s.schedule for s in deployment.schedules]
    assert (deployment.name, schedule.cron, schedule.timezone) == ("nightly", "0 2 * * *", "America/New_York")
    assert deployment.parameters == {
        "exports": str((tmp_path / "exports").resolve()),
        "warehouse": str((tmp_path / "warehouse.duckdb").resolve()),
        "reports": str((tmp_path / "reports").resolve()),
        "timezone": "America/New_York",
    }


def test_schedule_stays_at_two_local_across_the_end_of_daylight_saving(tmp_path):
    deployment = build_deployment(
        tmp_path / "exports", tmp_path / "warehouse.duckdb", tmp_path / "reports",
        cron="0 2 * * *", timezone="America/New_York",
    )
    runs = next_runs(deployment.schedules[0].schedule, dt.datetime(2026, 10, 30, 12, tzinfo=dt.timezone.utc), 3)
    # 2026-11-01 02:00 EDT falls back to 01:00 EST: the 02:00 run that day is at 07:00 UTC.
    assert [(r.astimezone(NEW_YORK).date().isoformat(), r.astimezone(NEW_YORK).hour, r.hour) for r in runs] == [
        ("2026-10-31", 2, 6),
        ("2026-11-01", 2, 7),
        ("2026-11-02", 2, 7),
    ]


@pytest.mark.parametrize(
    "settings_toml, cron, timezone, expected",
    [
        ("", None, None, ("0 2 * * *", "UTC")),
        ('timezone = "America/Denver"\n', None, None, ("0 2 * * *", "America/Denver")),
        ('[schedule]\ncron = "30 1 * * *"\ntimezone = "America/Chicago"\n', None, None, ("30 1 * * *", "America/Chicago")),
        ('[schedule]\ncron = "30 1 * * *"\ntimezone = "America/Chicago"\n', "0 3 * * *", "America/Phoenix", ("0 3 * * *", "America/Phoenix")),
    ],
    ids=["defaults", "network-zone", "settings-schedule", "options-win"],
)
def test_schedule_comes_from_settings_unless_given(tmp_path, settings_toml, cron, timezone, expected):
    config = tmp_path / "settings.toml"
    config.write_text(settings_toml)
    deployment = build_deployment(
        tmp_path / "exports", tmp_path / "warehouse.duckdb", tmp_path / "reports", config=config, cron=cron, timezone=timezone
    )
    schedule = deployment.schedules[0].schedule
    assert (schedule.cron, schedule.timezone) == expected
    assert deployment.parameters["config"] == str(config.resolve())


@dataclass
class Served:
    site: fh.Site
    client: object  # prefect SyncPrefectClient on the session's server
    deployment: object
    log: Path


@pytest.fixture(scope="module")
def served(prefect_server, tmp_path_factory):  # noqa: F811
    """`clinic-outcomes serve ... --cron "0 2 * * *" --timezone America/New_York` against the session's server,
    with the deployment as the Prefect client reads it back; the serve process is ended even on failure."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    site = fh.new_site(tmp_path_factory.mktemp("served"), prefect_server, fh.all_drops())
    log = site.root / "serve.log"
    with log.open("wb") as out:
        serve = subprocess.Popen(
            [
                sys.executable, "-m", "clinic_outcomes.cli", "serve",
                "--exports", str(site.exports), "--warehouse", str(site.warehouse), "--reports", str(site.reports),
                "--config", str(site.config), "--cron", "0 2 * * *", "--timezone", "America/New_York",
                "--name", "flow-tests",
            ],
            cwd=fh.REPO, env=site.env(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        with temporary_settings({PREFECT_API_URL: prefect_server.api_url}), get_client(sync_client=True) as client:

            def registered():
                if serve.poll() is not None:
                    pytest.fail(f"serve exited with {serve.returncode}:\n{log.read_text()[-3000:]}")
                try:
                    return client.read_deployment_by_name("clinic-outcomes-nightly/flow-tests")
                except Exception:  # ObjectNotFound until serve has registered it
                    return None

            deployment = fh.wait_for(registered, 300, interval=0.5, what="the served deployment")
            yield Served(site, client, deployment, log)
    finally:
        fh.stop_process(serve)


@pytest.mark.slow
def test_served_deployment_has_the_cron_in_its_zone(served):
    deployment = served.deployment
    assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in deployment.schedules] == [
        ("0 2 * * *", "America/New_York", True)
    ]
    assert deployment.parameters == {
        "exports": str(served.site.exports),
        "warehouse": str(served.site.warehouse),
        "reports": str(served.site.reports),
        "config": str(served.site.config),
        "timezone": "America/New_York",
    }


@pytest.mark.slow
def test_server_schedules_the_deployments_runs_at_two_local(served):
    from prefect.client.schemas.filters import (
        DeploymentFilter, DeploymentFilterId, FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    def scheduled_runs():
        return served.client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[served.deployment.id])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))),
        )

    # The scheduler looks at new deployments every few seconds (measured: the runs appear within 10 s).
    scheduled = fh.wait_for(scheduled_runs, 45, interval=1, what="the server to schedule the deployment's runs")
    assert {r.expected_start_time.astimezone(NEW_YORK).strftime("%H:%M") for r in scheduled} == {"02:00"}


@pytest.mark.slow
def test_triggered_run_of_the_served_deployment_publishes(served):
    from prefect.client.schemas.objects import StateType

    flow_run = served.client.create_flow_run_from_deployment(served.deployment.id, parameters={"as_of": fh.as_of()})

    def finished():
        run = served.client.read_flow_run(flow_run.id)
        return run if run.state is not None and run.state.is_final() else None

    done = fh.wait_for(finished, 600, interval=0.5, what="the triggered flow run to finish")
    assert done.state.type == StateType.COMPLETED, f"{done.state.type}: {done.state.message}"
    site = served.site
    assert fh.runs(site) == [(1, "published")]
    assert fh.query(site.warehouse, "select as_of::varchar from ops.runs") == [(fh.as_of(),)]
    assert os.readlink(site.reports / "latest") == "runs/run-00001"
