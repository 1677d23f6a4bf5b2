/* The ticket page: the timeline refreshes live when someone replies (only what this user may
 * see: the server renders it), and the linked machine shows its live status and a chart. */
(function () {
  "use strict";
  var spec = JSON.parse(document.getElementById("ticket-spec").textContent);
  var box = document.getElementById("timeline-box");
  var pending = null;
  // Plotly reads its texts as a little HTML (<b>, <br>, <a href>): data goes in as plain text.
  function plain(text) { return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }
  var LABELS = { online: "Online", warning: "Warning", fault: "Fault", offline: "Offline",
                 never_seen: "Never seen", decommissioned: "Decommissioned" };

  function refreshTimeline() {
    if (pending) { return; }
    pending = setTimeout(function () {
      pending = null;
      fetch(window.location.pathname + "?partial=timeline", { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) { Fleetport.replaceWithServerHtml(box, html); } });
    }, 300);
  }

  function mine(m) { return m.ticket === spec.ticket; }
  Fleetport.live.on("ticket.comment", function (m) { if (mine(m)) { refreshTimeline(); } });
  Fleetport.live.on("ticket.updated", function (m) {
    if (!mine(m)) { return; }
    refreshTimeline();
    var status = document.querySelector('[data-testid="ticket-status"]');
    var names = { new: "New", open: "Open", pending_customer: "Waiting for customer", resolved: "Resolved", closed: "Closed" };
    if (status && names[m.status]) { status.textContent = names[m.status]; }
  });

  if (spec.asset && window.Plotly) {
    Fleetport.live.subscribe("asset", spec.asset);
    Fleetport.live.on("asset.status", function (m) {
      if (m.asset !== spec.asset) { return; }
      var badge = document.querySelector('[data-field="asset-status"]');
      if (badge) { badge.textContent = LABELS[m.status] || m.status; }
    });
    var to = new Date();
    var from = new Date(to.getTime() - 24 * 3600e3);
    var charts = document.getElementById("ticket-charts");
    spec.gauges.forEach(function (g) {
      var el = document.createElement("div");
      el.className = "chart";
      charts.appendChild(el);
      var url = "/api/v1/assets/" + spec.asset + "/telemetry/?metric=" + encodeURIComponent(g.code) +
        "&from=" + encodeURIComponent(from.toISOString()) + "&to=" + encodeURIComponent(to.toISOString());
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
        .then(function (data) {
          var points = data.points || [];
          Plotly.newPlot(el, [{ type: "scatter", mode: "lines", x: points.map(function (p) { return p.t || p.bucket; }),
            y: points.map(function (p) { return p.avg !== undefined ? p.avg : p.value; }) }], {
            title: { text: plain(g.label + " — last 24 h" + (g.unit ? " (" + g.unit + ")" : "")), font: { size: 13 } },
            height: 200, margin: { l: 44, r: 10, t: 32, b: 30 }, showlegend: false, xaxis: { type: "date" },
            paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: { family: "system-ui, sans-serif", size: 11 }
          }, { responsive: true, displaylogo: false });
        })
        .catch(function () { el.textContent = "No telemetry to show."; });
    });
  }
  Fleetport.live.start();
})();
