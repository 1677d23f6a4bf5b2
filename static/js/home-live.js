/* The home page's ticket panel, live: each ticket message (support/live.py sends the ticket's
 * state after every timeline event and SLA change) fetches the panel again, so its counts and
 * list read exactly as after a reload (docs/architecture.md, "Figures"). */
(function () {
  "use strict";
  var PANEL = "#home-tickets";
  if (!document.querySelector(PANEL)) { return; }
  function refresh() { Fleetport.refreshParts([PANEL]); }
  ["ticket.comment", "ticket.updated", "ticket.sla"].forEach(function (type) {
    Fleetport.live.on(type, refresh);
  });
  Fleetport.live.start();
})();
