/* The alarm centre, live. A new alarm on an empty list takes the list from the server at once
 * (nothing to lose: "No active alarm" must not stay under it); on a list being worked, a notice
 * offers the new alarms instead of moving rows under the pointer. Cleared alarms are marked in
 * place and lose their buttons. */
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
  Fleetport.live.start();
})();
