/* The fleet overview, updated live: a row's status, last seen, values, health, maintenance and
 * alarms; the tiles. */
(function () {
  "use strict";
  var LABELS = { online: "Online", warning: "Warning", fault: "Fault", offline: "Offline",
                 never_seen: "Never seen", decommissioned: "Decommissioned" };
  var BADGES = { online: "badge-ok", warning: "badge-warn", fault: "badge-bad", offline: "badge-bad",
                 never_seen: "badge-muted", decommissioned: "badge-muted" };

  function bumpTile(status, delta) {
    var tile = document.querySelector('[data-tile="' + status + '"] [data-count]');
    if (tile) { tile.textContent = String(Math.max(0, parseInt(tile.textContent, 10) + delta)); }
  }

  // The tiles count the whole fleet, the table shows one page of it (or the filtered rows): a
  // message for an asset not shown moves a tile only if that asset's status changed, which the
  // page cannot tell the first time it hears of the asset. Then (or on a change) the tiles are
  // read again from the server, at most once per TILES_AFTER_MS however busy the fleet.
  var TILES_AFTER_MS = 3000;
  var offPage = {};  // asset id → the status last heard for an asset not in the table
  var tilesDue = null;
  function tilesSoon() {
    if (tilesDue) { return; }
    tilesDue = window.setTimeout(function () {
      tilesDue = null;
      Fleetport.refreshParts([".tiles"]);
    }, TILES_AFTER_MS);
  }

  Fleetport.live.on("asset.status", function (m) {
    var row = document.querySelector('tr[data-asset-id="' + m.asset + '"]');
    if (!row) {
      if (offPage[m.asset] !== m.status) {
        offPage[m.asset] = m.status;
        tilesSoon();
      }
      return;
    }
    var previous = row.getAttribute("data-status");
    if (previous !== m.status) {
      bumpTile(previous, -1);
      bumpTile(m.status, +1);
      row.setAttribute("data-status", m.status);
      var badge = row.querySelector('[data-field="status"]');
      badge.className = "badge " + (BADGES[m.status] || "badge-muted");
      badge.textContent = LABELS[m.status] || m.status;
      row.classList.remove("flash");
      void row.offsetWidth; // restart the highlight
      row.classList.add("flash");
    }
    if (m.last_seen_at) {
      var cell = row.querySelector('[data-field="last-seen"]');
      var time = document.createElement("time");
      time.setAttribute("datetime", m.last_seen_at);
      time.textContent = Fleetport.format.whenSeconds(m.last_seen_at);  // the server's |when_seconds
      cell.replaceChildren(time);
    }
    var gauges = JSON.parse(row.getAttribute("data-gauges") || "[]");
    var values = row.querySelector('[data-field="values"]');
    var shown = gauges.filter(function (g) { return m.last_values && g[0] in m.last_values; });
    if (shown.length) {
      values.textContent = "";
      // As the server writes them (fleet/templates/fleet/overview.html): the name, then the
      // value at its unit's precision with the unit.
      shown.forEach(function (g) {
        var span = document.createElement("span");
        span.className = "kv";
        span.setAttribute("data-metric", g[0]);
        var label = document.createElement("small");
        label.className = "muted";
        label.textContent = g[1];
        span.append(label, " " + Fleetport.format.quantity(m.last_values[g[0]], g[2]));
        values.append(span, " ");
      });
    }
  });

  function alarmDelta(delta) {
    return function (m) {
      var cell = document.querySelector('tr[data-asset-id="' + m.asset + '"] [data-field="alarms"]');
      if (!cell) { return; }
      var count = Math.max(0, (parseInt(cell.textContent, 10) || 0) + delta);
      if (!count) {
        cell.textContent = "0";
        return;
      }
      var badge = document.createElement("span");
      badge.className = "badge badge-bad";
      badge.textContent = String(count);
      cell.replaceChildren(badge);
    };
  }
  Fleetport.live.on("alarm.raised", alarmDelta(+1));
  Fleetport.live.on("alarm.cleared", alarmDelta(-1));
  // Health and maintenance read as the server writes them (a risk's label and badge, a window
  // over a site or the whole customer): their parts are fetched again (docs/architecture.md).
  Fleetport.live.on("asset.health", function (m) {
    var cell = 'tr[data-asset-id="' + m.asset + '"] [data-field="health"]';
    if (document.querySelector(cell)) { Fleetport.refreshParts([cell]); }
  });
  Fleetport.live.on("maintenance.changed", function () {
    if (document.querySelector("#asset-table")) { Fleetport.refreshParts(["#asset-table tbody"]); }
  });
  Fleetport.live.start();
})();
