"""The clock of maintenance windows: windows that begin or end on their own (nobody writes
them then) are told to live pages by a beat sweep, each boundary once (docs/maintenance.md,
"When a window begins or ends"). The writes of windows are `fleet.windows`; when a window is
in effect is `fleet.maintenance`'s business.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from fleet.alarms import alarms_enter_maintenance
from fleet.live import window_messages
from fleet.maintenance import TICK, boundaries, occurrences
from fleet.models import MaintenanceWindow
from portal import live, redis_conn

# The last instant the boundary sweep covered (ISO 8601), next to the live messages it guards.
SWEPT_KEY = "fleet:maintenance:swept"
# Without a stored instant (the first sweep, or a Redis that lost its data) the sweep looks this
# far back: twice the beat's 30 s, so a boundary is told late rather than never.
FIRST_LOOKBACK = timedelta(seconds=60)
# After a long stop of beat, boundaries older than this are not told any more: the query stays
# bounded, and a page open that long has reconnected and fetched again since.
CATCH_UP = timedelta(hours=1)
# Move the stored instant from ARGV[1] ("" for none) to ARGV[2], only if nobody moved it first.
_ADVANCE = """
if (redis.call('GET', KEYS[1]) or '') == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


def _swept(stored: str) -> datetime | None:
    """The stored instant; None for none, or for what is no aware instant (the key written by
    hand): the sweep then looks FIRST_LOOKBACK back and writes a good one."""
    try:
        swept = datetime.fromisoformat(stored)
    except ValueError:
        return None
    return swept if swept.tzinfo is not None else None


def _mark_alarms(window: MaintenanceWindow, instants: list[datetime], since: datetime, now: datetime) -> None:
    """The alarms already active when an occurrence began (an instant the sweep found) are in
    maintenance from then on. Before the cursor moves: marking twice changes nothing, so a
    sweep that fails after it leaves nothing half-done for the next one."""
    zone = window.customer.time_zone or "UTC"
    began = [span for span in occurrences(window, since, now + TICK, zone) if span[0] in instants]
    alarms_enter_maintenance(window=window, spans=began)


def window_boundaries_announce(*, now: datetime | None = None) -> int:
    """Tell live pages about every window that began or ended since the last sweep (beat,
    `fleet.maintenance_boundaries`, every 30 s): one `maintenance.changed` to the window's
    customer (and staff) per window and sweep, as a user's change of it sends. Returns how many
    windows were told. The alarms active on a window's assets when it began are marked
    `in_maintenance` first. docs/maintenance.md, "When a window begins or ends".

    Each boundary is told once: the sweep covers (last swept instant, now], and moves that
    instant forward with a compare-and-set before it publishes, so a second sweep (run twice
    by beat, or at the same time on another worker) finds nothing left to tell. A failed
    publish moves it back for the next sweep. The instant lives in Redis rather than in a table:
    a sweep that cannot reach Redis can publish nothing either and fails before anything
    moves; no migration; and losing the key only makes the next sweep look FIRST_LOOKBACK back,
    which at worst tells a page twice to fetch its parts again (harmless).
    """
    now = now or timezone.now()
    client = redis_conn.client(socket_timeout=2, socket_connect_timeout=2)
    try:
        stored = client.get(SWEPT_KEY)
        previous = stored.decode() if isinstance(stored, bytes) else (stored or "")
        since = max(_swept(previous) or now - FIRST_LOOKBACK, now - CATCH_UP)
        if since >= now:  # another worker's clock ran ahead, or the same instant again
            return 0
        passed = boundaries(since, now)
        for window, instants in passed:
            _mark_alarms(window, instants, since, now)
        if not client.eval(_ADVANCE, 1, SWEPT_KEY, previous, now.isoformat()):
            return 0  # a concurrent sweep covered this span
        messages = [m for window, _ in passed for m in window_messages(window.customer_id, window.pk)]
        try:
            live.publish_many(messages)
        except Exception:
            client.eval(_ADVANCE, 1, SWEPT_KEY, now.isoformat(), previous)  # the next sweep tells
            raise
        return len(passed)
    finally:
        client.close()
