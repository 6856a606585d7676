"""`clinic-outcomes serve`: the nightly run as a Prefect deployment on a cron schedule.

`flow.serve` registers the deployment with the Prefect API named by
PREFECT_API_URL (a self-hosted `prefect server start`, or the temporary local
server when none is set) and runs each scheduled flow run in this process.
"""

from __future__ import annotations

from pathlib import Path

from prefect.schedules import Cron

from clinic_outcomes.settings import load_settings


def deployment_schedule(config: Path | None, cron: str | None, timezone: str | None) -> Cron:
    settings = load_settings(config).with_timezone(timezone)
    return Cron(cron or settings.schedule.cron, timezone=timezone or settings.schedule_timezone)


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
        description="Nightly clinic-outcomes run: load new EMR drops, validate, compute metrics, publish.",
        tags=["clinic-outcomes"],
    )


def serve(exports, warehouse, reports, config=None, cron=None, timezone=None, name="nightly") -> None:
    from flows.nightly import nightly

    nightly.serve(
        name=name,
        schedules=[deployment_schedule(config, cron, timezone)],
        parameters=deployment_parameters(exports, warehouse, reports, config, timezone),
        description="Nightly clinic-outcomes run: load new EMR drops, validate, compute metrics, publish.",
        tags=["clinic-outcomes"],
    )
