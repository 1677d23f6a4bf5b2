/* The alarm centre, live: a notice for new alarms, cleared ones marked in place. */
(function () {
  "use strict";
  var notice = document.querySelector(".new-alarms");
  Fleetport.live.on("alarm.raised", function () { notice.hidden = false; });
  Fleetport.live.on("alarm.cleared", function (m) {
    var cell = document.querySelector('tr[data-alarm-id="' + m.alarm + '"] [data-field="state"]');
    if (cell) { cell.textContent = "Cleared"; }
  });
  Fleetport.live.start();
})();
