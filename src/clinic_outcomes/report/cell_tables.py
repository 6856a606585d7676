"""The report's tables that marts.report_cells holds (R7), laid out for the template: the report only formats
these rows (a suppressed one shows "fewer than 11"); it computes none of their figures."""

from __future__ import annotations

from typing import Any

import polars as pl

from clinic_outcomes.report.cells import MARGIN, NETWORK, clinic_key, clinic_of_key
from clinic_outcomes.report.wording import (
    COMPLETION_ORDER, EVENT_TYPES, RELIEF_AT_HOURS, Shown, hours_text, label_of,
)

NOT_RECORDED = "not_recorded"
NOT_ENOUGH_FOLLOWED = "not enough patients followed"


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
        if render == "hours":
            return hours_text(value)
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
        return NETWORK if clinic_id is None else clinic_key(clinic_id)

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
            {"clinic_id": clinic_of_key(clinic), **{
                event: self.text((table_id, clinic, "all_time", event, MARGIN, "per_100_sessions"), "rate") or ""
                for event in EVENT_TYPES
            }}
            for clinic in clinics
        ]

    def retreatments(self, clinic_id: str | None) -> list[dict[str, str]]:
        """Flags per clinic (the network table's rows; a clinic's report: its own row), recent and all time."""
        rows = _order(self._keys("retreatments", NETWORK, 3))
        if clinic_id is not None:
            rows = [row for row in rows if row == clinic_key(clinic_id)]
        return [
            {"clinic_id": clinic_of_key(row),
             "recent": self.text(("retreatments", NETWORK, "last_30_days", row, MARGIN, "flags"), "count") or "",
             "total": self.text(("retreatments", NETWORK, "all_time", row, MARGIN, "flags"), "count") or ""}
            for row in rows
        ] + ([{"clinic_id": "All clinics",
               "recent": self.text(("retreatments", NETWORK, "last_30_days", MARGIN, MARGIN, "flags"), "count") or "",
               "total": self.text(("retreatments", NETWORK, "all_time", MARGIN, MARGIN, "flags"), "count") or ""}]
             if clinic_id is None else [])

    # -- relief duration (R4): figure_cells.py ------------------------------------------------

    def _relief_keys(self, table_id: str, scope: str) -> list[str]:
        rows = self._keys(table_id, scope, 3)
        out = []
        for grouping in ("condition", "aftercare", "clinician_role"):
            values = {row.partition(":")[2] for row in rows if row.startswith(grouping + ":")}
            out += [f"{grouping}:{value}" for value in _order(values)]
        return out

    def relief_shown(self, table_id: str, clinic_id: str | None, row_key: str) -> bool:
        """Whether the group's episodes (and so its curve and estimates) are shown."""
        row = self.cells.get((table_id, self.scope(clinic_id), "all_time", row_key, MARGIN, "episodes"))
        return row is not None and not row["suppressed"]

    def _share_text(self, key: tuple, name: str, with_ci: bool, episodes: float | None) -> str:
        row = self.cells.get((*key, name))
        if row is None:
            return ""
        if row["suppressed"]:
            return f"fewer than {self.min_cell}"
        if row["value"] is None:
            return NOT_ENOUGH_FOLLOWED if episodes else "none"
        text = f"{100 * row['value']:.0f}%"
        low, high = self.cells.get((*key, f"{name}_ci_low")), self.cells.get((*key, f"{name}_ci_high"))
        if with_ci and low and high and low["value"] is not None and high["value"] is not None:
            text += f" ({100 * low['value']:.0f}% to {100 * high['value']:.0f}%)"
        return text

    def relief_rows(self, clinic_id: str | None) -> list[dict[str, str]]:
        """The relief table (the network's or a clinic's): the rows sections._relief_table_rows made, now
        from marts.report_cells: all episodes, then each condition, then each aftercare advice."""
        table_id, scope = "relief_duration", self.scope(clinic_id)
        out = []
        for row_key in [MARGIN, *self._relief_keys(table_id, scope)]:
            key = (table_id, scope, "all_time", row_key, MARGIN)
            episodes = self.cells.get((*key, "episodes"))
            if episodes is None:
                continue
            grouping, _, value = row_key.partition(":")
            label = "All needling sessions" if row_key == MARGIN else label_of(None if value == NOT_RECORDED else value)
            median = self.cells.get((*key, "median_hours"))
            hidden = bool(episodes["suppressed"])
            ci = ""
            if not hidden and median and median["value"] is not None:
                low, high = self.cells.get((*key, "median_ci_low")), self.cells.get((*key, "median_ci_high"))
                if low and low["value"] is not None:
                    ci = f"{hours_text(low['value'])} to {hours_text(high['value'] if high else None)}"
            out.append({
                "label": label,
                "group_by": "all" if row_key == MARGIN else grouping,
                "episodes": self.text((*key, "episodes"), "count") or "",
                "median": f"fewer than {self.min_cell}" if hidden else hours_text(median["value"] if median else None),
                "ci": ci,
                **{name: self._share_text(key, name, True, episodes["value"]) for name in RELIEF_AT_HOURS},
                "no_followup": self.text((*key, "no_followup"), "count") or "",
            })
        return out

    def relief_comparison(self, row_key: str) -> dict[str, Any]:
        """One group of the network's hazard-ratio comparison: its texts (hidden: every figure hidden) and the
        ratio's figures, from marts.report_cells."""
        key = ("relief_comparison", NETWORK, "all_time", row_key, MARGIN)
        episodes = self.cells.get((*key, "episodes"))
        values = {m: (self.cells.get((*key, m)) or {}).get("value")
                  for m in ("hazard_ratio", "hazard_ratio_ci_low", "hazard_ratio_ci_high", "factor_p")}
        return {
            "present": episodes is not None,
            "hidden": episodes is None or bool(episodes["suppressed"]),
            "episodes": self.text((*key, "episodes"), "count") or "",
            "median": "" if episodes is None else f"fewer than {self.min_cell}" if episodes["suppressed"]
            else hours_text((self.cells.get((*key, "median_hours")) or {}).get("value")),
            "in_relief_72h": self._share_text(key, "in_relief_72h", False, episodes and episodes["value"]),
            "in_relief_7d": self._share_text(key, "in_relief_7d", False, episodes and episodes["value"]),
            **values,
        }
