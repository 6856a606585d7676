"""The report's tables that marts.report_cells holds (R7), laid out for the template: the report only formats
these rows (a suppressed one shows "fewer than 11"); it computes none of their figures."""

from __future__ import annotations

from typing import Any

import polars as pl

from clinic_outcomes.report.cells import MARGIN, NETWORK
from clinic_outcomes.report.wording import COMPLETION_ORDER, EVENT_TYPES, Shown, hours_text, label_of

NOT_RECORDED = "not_recorded"


def _order(keys: set[str], first: tuple[str, ...] = ()) -> list[str]:
    """Known codes in their order, then the others alphabetically, 'not_recorded' last; never the margin."""
    keys = set(keys) - {MARGIN}
    rest = sorted(keys - set(first) - {NOT_RECORDED})
    return [k for k in first if k in keys] + rest + ([NOT_RECORDED] if NOT_RECORDED in keys else [])


class CellTables:
    def __init__(self, cells: pl.DataFrame, min_cell: int):
        self.min_cell = min_cell
        self.cells = {
            (r["table_id"], r["clinic_id"], r["period"], r["row_key"], r["col_key"], r["measure"]): r
            for r in cells.to_dicts()
        }

    def _keys(self, table_id: str, clinic_id: str, position: int) -> set[str]:
        return {key[position] for key in self.cells if key[0] == table_id and key[1] == clinic_id}

    def text(self, key: tuple, render: str) -> str | None:
        """The cell's figure as shown; None when the mart has no such cell (no data)."""
        row = self.cells.get(key)
        if row is None:
            return None
        if row["suppressed"]:
            return f"fewer than {self.min_cell}"
        value = row["value"]
        if value is None:
            return "none"
        if render == "count":
            return f"{int(value):,}"
        if render == "share":
            return f"{100 * value:.0f}%"
        return f"{value:.1f}"

    def shown(self, key: tuple, kind: str) -> Shown:
        """A headline or trend figure: no cell means no patient at all ("no data"), as before the mart."""
        row = self.cells.get(key)
        if row is None:
            return Shown("no data", None, True)
        if row["suppressed"]:
            return Shown(f"fewer than {self.min_cell}", None, True)
        value = row["value"]
        if kind == "hours":
            return Shown(hours_text(value), value, False)
        if value is None:
            return Shown("none", None, False)
        if kind == "count":
            return Shown(f"{int(value):,}", value, False)
        if kind == "share":
            return Shown(f"{100 * value:.0f}%", value, False)
        return Shown(f"{value:.1f}", value, False)

    @staticmethod
    def scope(clinic_id: str | None) -> str:
        return NETWORK if clinic_id is None else clinic_id

    def relief_by_condition_role(self, clinic_id: str | None) -> dict[str, Any]:
        table_id, scope = "relief_by_condition_role", self.scope(clinic_id)
        roles = _order(self._keys(table_id, scope, 4))
        conditions = _order(self._keys(table_id, scope, 3))

        def cell(condition: str, role: str) -> dict[str, str]:
            key = (table_id, scope, "all_time", condition, role)
            points = self.text((*key, "mean_relief_points"), "points")
            if points is None:
                return {"text": "", "detail": ""}
            if points.startswith("fewer"):
                return {"text": points, "detail": ""}
            share = self.text((*key, "share_meaningful"), "share")
            sessions = self.text((*key, "sessions"), "count")
            return {"text": f"{points} points", "detail": f"{share} meaningful, {sessions} sessions"}

        table = [
            {"label": label_of(condition if condition != NOT_RECORDED else None), "total": False,
             "cells": [cell(condition, role) for role in roles] + [cell(condition, MARGIN)]}
            for condition in conditions
        ]
        table.append({"label": "All conditions", "total": True,
                      "cells": [cell(MARGIN, role) for role in roles] + [cell(MARGIN, MARGIN)]})
        headers = [label_of(role if role != NOT_RECORDED else None) for role in roles] + ["All roles"]
        return {"roles": headers, "table": table}

    def plan_completion(self, clinic_id: str | None) -> list[dict[str, str]]:
        table_id, scope = "plan_completion", self.scope(clinic_id)
        rows = _order(self._keys(table_id, scope, 3), COMPLETION_ORDER)
        return [
            {"label": label_of(row if row != NOT_RECORDED else None),
             "plans": self.text((table_id, scope, "all_time", row, MARGIN, "plans"), "count") or "",
             "share": self.text((table_id, scope, "all_time", row, MARGIN, "share"), "share") or ""}
            for row in rows
        ]

    def adverse_events_by_role(self, clinic_id: str | None) -> dict[str, Any]:
        table_id, scope = "adverse_events_by_role", self.scope(clinic_id)
        roles = _order(self._keys(table_id, scope, 4))
        columns = [MARGIN, *roles]
        headers = ["All needling sessions" if clinic_id is None else "This clinic"] + [
            label_of(role if role != NOT_RECORDED else None) for role in roles
        ]

        def rate(event: str, role: str) -> str:
            return self.text((table_id, scope, "all_time", event, role, "per_100_sessions"), "rate") or ""

        return {
            "headers": headers,
            "rows": [{"label": label_of(event), "cells": [rate(event, role) for role in columns]} for event in EVENT_TYPES]
            + [{"label": "All adverse events", "cells": [rate(MARGIN, role) for role in columns]}],
            "sessions": [
                self.text((table_id, scope, "all_time", MARGIN, role, "sessions"), "count") or "none" for role in columns
            ],
        }

    def adverse_events_by_clinic(self) -> list[dict[str, str]]:
        """Each clinic's rates by event type (its table's 'total' column), for the network report."""
        table_id = "adverse_events_by_role"
        clinics = sorted({key[1] for key in self.cells if key[0] == table_id and key[1] != NETWORK})
        return [
            {"clinic_id": clinic, **{
                event: self.text((table_id, clinic, "all_time", event, MARGIN, "per_100_sessions"), "rate") or ""
                for event in EVENT_TYPES
            }}
            for clinic in clinics
        ]

    def retreatments(self, clinic_id: str | None) -> list[dict[str, str]]:
        """Flags per clinic (the network table's rows; a clinic's report: its own row), recent and all time."""
        rows = _order(self._keys("retreatments", NETWORK, 3))
        if clinic_id is not None:
            rows = [row for row in rows if row == clinic_id]
        return [
            {"clinic_id": row,
             "recent": self.text(("retreatments", NETWORK, "last_30_days", row, MARGIN, "flags"), "count") or "",
             "total": self.text(("retreatments", NETWORK, "all_time", row, MARGIN, "flags"), "count") or ""}
            for row in rows
        ] + ([{"clinic_id": "All clinics",
               "recent": self.text(("retreatments", NETWORK, "last_30_days", MARGIN, MARGIN, "flags"), "count") or "",
               "total": self.text(("retreatments", NETWORK, "all_time", MARGIN, MARGIN, "flags"), "count") or ""}]
             if clinic_id is None else [])
