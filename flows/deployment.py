"""`clinic-outcomes serve`: the nightly run as a Prefect deployment on a cron schedule.

`flow.serve` registers the deployment with the Prefect API named by
PREFECT_API_URL (a self-hosted `prefect server start`, or the temporary local
server when none is set) and runs each scheduled flow run in this process.

The deployment runs one night at a time: a deployment concurrency limit of 1 with the CANCEL_NEW collision
strategy, so a run due while another is running (a slow night meeting the next schedule, or a manual run) is
not started and ends Cancelled, with Prefect's reason, never Failed. (The run lock beside the warehouse still
refuses a second writer from outside Prefect, such as `clinic-outcomes run`.) prefect.yaml at the top of the
repository declares the same deployment for a process work pool.
"""

from __future__ import annotations

from pathlib import Path

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Cron

from clinic_outcomes.settings import load_settings


def deployment_schedule(config: Path | None, cron: str | None, timezone: str | None) -> Cron:
    settings = load_settings(config).with_timezone(timezone)
    return Cron(cron or settings.schedule.cron, timezone=timezone or settings.schedule_timezone)


DESCRIPTION = "Nightly clinic-outcomes run: load new EMR drops, validate, compute metrics, publish."
TAGS = ["clinic-outcomes"]


def one_run_at_a_time() -> ConcurrencyLimitConfig:
    return ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)


def deployment_parameters(exports: Path, warehouse: Path, reports: Path, config: Path | None, timezone: str | None) -> dict:
    parameters = {
        "exports": str(Path(exports).resolve()),
        "warehouse": str(Path(warehouse).resolve()),
        "reports": str(Path(reports).resolve()),
    }
    if config:
        parameters["config"] = str(Path(config).resolve())
    if timezone:
        parameters["timezone"] = timezone
    return parameters


def build_deployment(exports, warehouse, reports, config=None, cron=None, timezone=None, name="nightly"):
    """The deployment object (no server needed to build it; tests check its schedule)."""
    from flows.nightly import nightly

    return nightly.to_deployment(
        name=name,
        schedules=[deployment_schedule(config, cron, timezone)],
        parameters=deployment_parameters(exports, warehouse, reports, config, timezone),
        description=DESCRIPTION,
        tags=TAGS,
        concurrency_limit=one_run_at_a_time(),
    )


def serve(exports, warehouse, reports, config=None, cron=None, timezone=None, name="nightly") -> None:
    from flows.nightly import nightly

    nightly.serve(
        name=name,
        schedules=[deployment_schedule(config, cron, timezone)],
        parameters=deployment_parameters(exports, warehouse, reports, config, timezone),
        description=DESCRIPTION,
        tags=TAGS,
        global_limit=one_run_at_a_time(),  # flow.serve's name for the deployment concurrency limit
    )
