"""Scheduling (issue 6): the nightly run as a Prefect deployment on a cron schedule with an explicit time zone.

The fast tests build the deployment without a server; the slow ones serve it
(`clinic-outcomes serve` in a subprocess) against a real local Prefect server,
read it back through the Prefect client, trigger runs and read each run's name,
artifacts and ops.runs row back.

The served cron is 02:00 New York on the day two days from now only (a yearly
date), so the server schedules a run at 02:00 local that no test session can
reach (every wait here is bounded far below a day): no run fires by itself while
a test runs. (A date beyond the scheduler's 100-day horizon, such as 29 February,
gets no scheduled run at all: measured.) Every wait is a generous bound on something that must
happen, with a message saying what did not.

Mutant tried: flow_run_name back to the template "nightly {as_of}" (the run with
as_of unset is named "nightly None": the test fails). The other slow tests here
were run passing, not under mutants.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
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
# 02:00 New York on the day after tomorrow, once a year: scheduled within the server's horizon, but never
# reached during a test session.
TWO_DAYS_AHEAD = (dt.datetime.now(NEW_YORK) + dt.timedelta(days=2)).date()
NEVER_DURING_A_TEST = f"0 2 {TWO_DAYS_AHEAD.day} {TWO_DAYS_AHEAD.month} *"


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

    from prefect.exceptions import ObjectNotFound

    site = fh.new_site(tmp_path_factory.mktemp("served"), prefect_server, fh.all_drops())
    log = site.root / "serve.log"
    env = site.env()
    env["PREFECT_RUNNER_POLL_FREQUENCY"] = "2"  # the runner looks for due runs every 2 s instead of 10
    with log.open("wb") as out:
        serve = subprocess.Popen(
            [
                sys.executable, "-m", "clinic_outcomes.cli", "serve",
                "--exports", str(site.exports), "--warehouse", str(site.warehouse), "--reports", str(site.reports),
                "--config", str(site.config), "--cron", NEVER_DURING_A_TEST, "--timezone", "America/New_York",
                "--name", "flow-tests",
            ],
            cwd=fh.REPO, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        with temporary_settings({PREFECT_API_URL: prefect_server.api_url}), get_client(sync_client=True) as client:

            def registered():
                if serve.poll() is not None:
                    pytest.fail(f"serve exited with {serve.returncode}:\n{log.read_text()[-3000:]}")
                try:
                    return client.read_deployment_by_name("clinic-outcomes-nightly/flow-tests")
                except ObjectNotFound:  # until serve has registered it
                    return None

            deployment = fh.wait_for(registered, 300, interval=0.5, what="`clinic-outcomes serve` to register its deployment")
            yield Served(site, client, deployment, log)
    finally:
        fh.stop_process(serve)


@pytest.mark.slow
def test_served_deployment_has_the_cron_in_its_zone(served):
    deployment = served.deployment
    assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in deployment.schedules] == [
        (NEVER_DURING_A_TEST, "America/New_York", True)
    ]
    # one run at a time; a run due while one runs is cancelled, not queued and not failed
    assert deployment.global_concurrency_limit.limit == 1
    assert deployment.concurrency_options.collision_strategy.value == "CANCEL_NEW"
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

    # The scheduler looks at new deployments every few seconds (measured: the runs appear within 10 s); the bound
    # leaves room for a machine busy with other work.
    scheduled = fh.wait_for(scheduled_runs, 240, interval=1, what="the server's scheduler to create the deployment's runs")
    starts = sorted(r.expected_start_time.astimezone(NEW_YORK) for r in scheduled)
    assert {s.strftime("%H:%M") for s in starts} == {"02:00"}
    assert starts[0].date() == TWO_DAYS_AHEAD


@pytest.mark.slow
def test_triggered_run_of_the_served_deployment_publishes(served):
    from prefect.client.schemas.objects import StateType

    flow_run = served.client.create_flow_run_from_deployment(served.deployment.id, parameters={"as_of": fh.as_of()})

    def finished():
        run = served.client.read_flow_run(flow_run.id)
        return run if run.state is not None and run.state.is_final() else None

    done = fh.wait_for(finished, 600, interval=0.5, what="the triggered flow run to finish")
    assert done.state.type == StateType.COMPLETED, f"{done.state.type}: {done.state.message}"
    assert done.name == f"nightly {fh.as_of()}"
    site = served.site
    assert fh.runs(site) == [(1, "published")]
    assert fh.query(site.warehouse, "select as_of::varchar, flow_run_id from ops.runs") == [(fh.as_of(), str(flow_run.id))]
    assert os.readlink(site.reports / "latest") == "runs/run-00001"

    artifacts = {a.key: a for a in served.client.read_artifacts(flow_run_filter=_this_run(flow_run.id))}
    assert set(artifacts) == {"nightly-summary", "nightly-report", "nightly-failed-checks"}
    summary = artifacts["nightly-summary"].data
    assert summary.startswith(f"# nightly {fh.as_of()}: published\n")
    loaded = fh.query(site.warehouse, "select rows_loaded, rows_rejected, files_loaded from ops.runs")[0]
    assert f"| rows loaded | {loaded[0]} |" in summary and f"| rows rejected | {loaded[1]} (" in summary
    assert f"| new export files read | {loaded[2]} (" in summary and "| failed checks |" in summary
    assert "## Stage times" in summary and "| validate_and_metrics |" in summary
    report = (site.reports / "runs" / "run-00001" / "report.html").resolve()
    assert artifacts["nightly-report"].data == f"[report as of {fh.as_of()}]({report.as_uri()})" and report.is_file()
    failed = json.loads(artifacts["nightly-failed-checks"].data)
    expected_failed = fh.query(site.warehouse, "select count(*) from quality.expectation_results where not success")[0][0]
    assert len(failed) == expected_failed
    _assert_no_identifier_value_or_key(site, [a.data for a in artifacts.values()])


def _this_run(flow_run_id):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    return FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))


def _assert_no_identifier_value_or_key(site, texts: list) -> None:
    """No artifact holds the patient-key secret, a patient's number, name or phone from the exports, or a
    rejected row's value."""
    import duckdb

    text = "\n".join(str(t) for t in texts)
    assert fh.KEY not in text
    identifiers: set[str] = set()
    con = duckdb.connect()
    try:
        for path in site.exports.glob("*/patients.*"):
            reader = "read_parquet" if path.name.endswith(".parquet") else "read_csv"
            rows = con.execute(f"select * from {reader}($p)", {"p": str(path)}).fetchall()
            columns = [d[0].lower() for d in con.execute(f"select * from {reader}($p) limit 0", {"p": str(path)}).description]
            for row in rows:
                values = dict(zip(columns, row))
                identifiers |= {str(values[c]) for c in ("patient_id", "full_name", "phone") if values.get(c)}
    finally:
        con.close()
    assert identifiers and sorted(i for i in identifiers if i in text) == []
    # the planted bad row (flow_helpers.generated): its values and its patient number
    assert "k_bad" not in text and "P_none" not in text


@pytest.mark.slow
def test_a_run_with_as_of_unset_is_named_by_the_default_date(served):
    from prefect.client.schemas.objects import StateType

    before = dt.datetime.now(NEW_YORK).date()
    flow_run = served.client.create_flow_run_from_deployment(served.deployment.id)

    def finished():
        run = served.client.read_flow_run(flow_run.id)
        return run if run.state is not None and run.state.is_final() else None

    done = fh.wait_for(finished, 600, interval=0.5, what="the run without as_of to finish")
    after = dt.datetime.now(NEW_YORK).date()
    assert done.state.type == StateType.COMPLETED, f"{done.state.type}: {done.state.message}"
    # the deployment's zone is New York (--timezone): today there, never "nightly None"
    assert done.name in {f"nightly {before}", f"nightly {after}"}
    as_of = fh.query(served.site.warehouse, "select as_of::varchar from ops.runs where flow_run_id = "
                     f"'{flow_run.id}'")
    assert [f"nightly {a}" for (a,) in as_of] == [done.name]


@pytest.mark.slow
def test_a_run_while_one_runs_is_not_started_and_ends_cancelled_not_failed(served):
    """The deployment's one concurrency slot is held (as a running night holds it); a run due then is cancelled."""
    from prefect.client.schemas.objects import StateType

    limit = served.deployment.global_concurrency_limit
    journal_before = served.site.journal.read_bytes() if served.site.journal.exists() else b""
    held = served.client.increment_concurrency_slots_with_lease(
        names=[limit.name], slots=1, mode="concurrency", lease_duration=600
    ).json()
    try:
        flow_run = served.client.create_flow_run_from_deployment(served.deployment.id, parameters={"as_of": fh.as_of()})

        def finished():
            run = served.client.read_flow_run(flow_run.id)
            return run if run.state is not None and run.state.is_final() else None

        done = fh.wait_for(finished, 300, interval=0.5, what="the runner to try the run and the server to refuse it")
    finally:
        served.client.release_concurrency_slots_with_lease(held["lease_id"])

    assert done.state.type == StateType.CANCELLED, f"{done.state.type}: {done.state.message}"
    assert done.state.message == "Deployment concurrency limit reached."
    # never started: no run record, nothing written
    assert (served.site.journal.read_bytes() if served.site.journal.exists() else b"") == journal_before
