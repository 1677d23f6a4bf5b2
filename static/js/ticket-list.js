/* The ticket list, live: the rows are fetched again (same filters) when a ticket changes. */
(function () {
  "use strict";
  var box = document.getElementById("ticket-rows");
  var timer = null;
  function refresh() {  // the same filters, rows only; at most every two seconds
    if (timer) { return; }
    timer = setTimeout(function () {
      timer = null;
      var url = new URL(window.location.href);
      url.searchParams.set("partial", "1");
      fetch(url, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) { Fleetport.replaceWithServerHtml(box, html); } });
    }, 2000);
  }
  ["ticket.updated", "ticket.comment", "ticket.sla"].forEach(function (t) { Fleetport.live.on(t, refresh); });
  Fleetport.live.start();
})();
