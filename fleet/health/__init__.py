"""Predictive maintenance: health rules over the stored rollups (docs/health.md).

    from fleet.health import evaluate
    summary = evaluate(asset_ids, now)   # writes AssetHealth, raises/moves/clears alarms
    summary.raised, summary.cleared, summary.as_dict()

`fleet.health.rules` is the pure core (numbers in, verdicts out), `fleet.health.evaluation` the
service around it, `fleet.health.tasks` the scheduled fan-out.
"""

from fleet.health.evaluation import KEY_PREFIX, Summary, evaluate, health_key

__all__ = ["KEY_PREFIX", "Summary", "evaluate", "health_key"]
