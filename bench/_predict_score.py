"""Scoring predictions against the scenarios' ground truth: pure, no database.

Definitions (docs/performance.md, "Predictive maintenance"):

- A *warning* is an evaluation at which an asset has at least one active prediction. Consecutive
  evaluations of one asset with a prediction are one *episode*; it is raised at its first one.
- A degradation is *warned* when an evaluation in its window `[fault − window, fault)` finds a
  prediction on the asset (window = 2 × the trend rule's horizon: a warning further ahead is
  not one anybody would act on). Its *lead time* is the fault time less the first such evaluation.
- A *false warning* is an episode raised anywhere else: on a healthy or noisy asset at any time
  (healthy machines that run one shift a day counted apart, `healthy_one_shift`),
  on a degrading one before its window ("early") or after its repair. Episodes raised while the
  machine is in its fault (between the fault and the repair) are neither: the fault is there.
- False warnings per 100 asset-days = false episodes ÷ (assets × days evaluated) × 100.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence, Set
from datetime import datetime, timedelta
from typing import Any

from fleet.simulator.scenarios import Scenario


def score(
    plan: Sequence[Scenario],
    evaluations: Sequence[datetime],
    warned: Mapping[datetime, Set[int]],
    *,
    window: timedelta,
) -> dict[str, Any]:
    """Figures from the plan (index = asset number), the evaluation times in order, and per
    evaluation time the asset numbers with an active prediction."""
    episodes: list[tuple[int, datetime]] = []  # (asset, raised at)
    previous: Set[int] = set()
    for at in evaluations:
        now = warned.get(at, set())
        episodes.extend((asset, at) for asset in sorted(now - previous))
        previous = now

    false_by: Counter[str] = Counter()
    for asset, at in episodes:
        s = plan[asset]
        if not s.degrading:
            false_by[f"{s.kind.value}_one_shift" if s.one_shift else s.kind.value] += 1
            continue
        assert s.fault_at is not None
        assert s.repaired_at is not None
        if at < s.fault_at - window:
            false_by[f"{s.kind.value}_early"] += 1
        elif s.repaired_at <= at:
            false_by[f"{s.kind.value}_after_repair"] += 1

    per_kind: dict[str, dict[str, Any]] = {}
    leads: list[float] = []
    for asset, s in enumerate(plan):
        entry = per_kind.setdefault(
            s.kind.value, {"assets": 0, "degradations": 0, "warned": 0, "lead_hours": []}
        )
        entry["assets"] += 1
        if not s.degrading:
            continue
        assert s.fault_at is not None
        in_window = [
            at for at in evaluations if s.fault_at - window <= at < s.fault_at and asset in warned.get(at, ())
        ]
        entry["degradations"] += 1
        if in_window:
            lead = (s.fault_at - in_window[0]).total_seconds() / 3600
            entry["warned"] += 1
            entry["lead_hours"].append(lead)
            leads.append(lead)

    days = (evaluations[-1] - evaluations[0]).total_seconds() / 86400 if len(evaluations) > 1 else 0.0
    asset_days = len(plan) * days
    degradations = sum(1 for s in plan if s.degrading)
    warned_count = sum(e["warned"] for e in per_kind.values())
    false_total = sum(false_by.values())
    for entry in per_kind.values():
        lead_hours = entry.pop("lead_hours")
        entry["median_lead_hours"] = round(statistics.median(lead_hours), 1) if lead_hours else None
    for kind, entry in per_kind.items():
        entry["false_warnings"] = sum(v for k, v in false_by.items() if k == kind or k.startswith(f"{kind}_"))
    return {
        "degradations": degradations,
        "warned_before_fault": warned_count,
        "warned_share": round(warned_count / degradations, 4) if degradations else None,
        "median_lead_hours": round(statistics.median(leads), 1) if leads else None,
        "lead_hours_p10_p90": _deciles(leads),
        "false_warnings": false_total,
        "false_warnings_by": dict(sorted(false_by.items())),
        "asset_days": round(asset_days, 1),
        "false_warnings_per_100_asset_days": round(false_total / asset_days * 100, 3) if asset_days else None,
        "warning_episodes": len(episodes),
        "per_scenario": per_kind,
    }


def _deciles(values: Sequence[float]) -> list[float] | None:
    if len(values) < 2:
        return None
    cuts = statistics.quantiles(values, n=10)
    return [round(cuts[0], 1), round(cuts[-1], 1)]
