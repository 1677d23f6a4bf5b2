/* The alarm centre, live. A new alarm on an empty list takes the list from the server at once
 * (nothing to lose: "No active alarm" must not stay under it); on a list being worked, a notice
 * offers the new alarms instead of moving rows under the pointer. Cleared alarms are marked in
 * place and lose their buttons. Alarms a maintenance window took in when it began
 * (`alarm.maintenance`, docs/maintenance.md) get the "in maintenance" badge the server draws. */
(function () {
  "use strict";
  var notice = document.querySelector(".new-alarms");
  Fleetport.live.on("alarm.raised", function () {
    if (!document.getElementById("alarm-table")) {
      Fleetport.refreshParts(["#alarm-list"]);
      return;
    }
    notice.hidden = false;
  });
  Fleetport.live.on("alarm.cleared", function (m) {
    var row = document.querySelector('tr[data-alarm-id="' + m.alarm + '"]');
    if (!row) { return; }
    row.querySelector('[data-field="state"]').textContent = "Cleared";
    var actions = row.querySelector(".alarm-actions");
    if (actions) { actions.replaceChildren(); }
  });
  Fleetport.live.on("alarm.maintenance", function (m) {
    var row = document.querySelector('tr[data-alarm-id="' + m.alarm + '"]');
    if (!row || row.querySelector('[data-testid="alarm-in-maintenance"]')) { return; }
    var badge = document.createElement("span");
    badge.className = "badge badge-muted";
    badge.dataset.testid = "alarm-in-maintenance";
    badge.textContent = "in maintenance";
    var cell = row.querySelector('[data-field="alarm"]');
    var link = cell.querySelector("a"); // "Review the readings": the badge goes before it, as served
    if (link) {
      cell.insertBefore(badge, link);
      cell.insertBefore(document.createTextNode(" "), link);
    } else {
      cell.append(" ", badge);
    }
  });
  Fleetport.live.start();
})();
