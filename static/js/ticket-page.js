/* The ticket page, live: every ticket.* message carries the ticket's state (status, priority,
 * assignee, SLA due times and breaches: support/live.py), which the tiles, details, forms and
 * status buttons take at once; the timeline is fetched again when someone writes (only what this
 * user may see: the server renders it). The linked machine shows its live status and a chart. */
(function () {
  "use strict";
  var spec = JSON.parse(document.getElementById("ticket-spec").textContent);
  var box = document.getElementById("timeline-box");
  var pending = null;
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

  // A moment as the server writes it (|when): the reader's zone and locale (static/js/format.js).
  function when(iso) { return Fleetport.format.when(iso); }
  function field(name) { return document.querySelector('[data-field="' + name + '"]'); }
  function setText(name, text) { var el = field(name); if (el) { el.textContent = text; } }
  function flag(name, text, kind) {  // the badge next to a tile's label, or none
    var el = field(name);
    if (!el) { return; }
    var badge = null;
    if (text) { badge = document.createElement("span"); badge.className = "badge " + kind; badge.textContent = text; }
    el.replaceChildren.apply(el, badge ? [badge] : []);
  }
  function choose(name, test) {  // a form's select follows the ticket, unless someone is using it
    var select = field(name);
    if (!select || document.activeElement === select) { return; }
    Array.prototype.forEach.call(select.options, function (o) { o.selected = test(o); });
  }
  function actions(status) {  // the status buttons this user gets in the ticket's new status
    var box = field("actions");
    var proto = document.getElementById("transition-form");
    if (!box || !proto) { return; }
    box.replaceChildren.apply(box, (spec.actions[status] || []).map(function (pair) {
      var form = proto.content.firstElementChild.cloneNode(true);
      form.querySelector('input[name="status"]').value = pair[0];
      var button = form.querySelector("button");
      button.setAttribute("data-transition", pair[0]);
      button.textContent = pair[1];
      return form;
    }));
  }
  function show(name, visible) { var el = field(name); if (el) { el.hidden = !visible; } }

  // Everything the page's server-rendered tiles and details show, from a ticket.* message.
  function apply(m) {
    setText("status", m.status_label);
    setText("priority", m.priority);
    setText("first-response", m.first_responded_at ? when(m.first_responded_at) : "by " + when(m.first_response_due));
    flag("first-response-flag", m.first_response_breached ? "breached" : "", "badge-bad");
    setText("resolution", m.resolved_at ? when(m.resolved_at)
      : m.status === "pending_customer" ? "paused" : m.resolution_due ? "by " + when(m.resolution_due) : "—");
    flag("resolution-flag", m.resolution_breached ? "breached" : m.sla_state === "at_risk" ? "about to breach" : "",
      m.resolution_breached ? "badge-bad" : "badge-warn");
    setText("assignee", m.assignee || "Not yet assigned");
    setText("terms", m.terms);
    setText("terms-source", m.terms_source);
    document.querySelectorAll("tr[data-priority]").forEach(function (row) {
      row.classList.toggle("row-current", row.getAttribute("data-priority") === m.priority);
    });
    choose("assignee-choice", function (o) { return m.assignee ? o.textContent === m.assignee : o.value === ""; });
    choose("priority-choice", function (o) { return o.value === m.priority; });
    actions(m.status);
    var unresolved = ["new", "open", "pending_customer"].indexOf(m.status) >= 0;
    show("credit", unresolved);
    show("reply", m.status !== "closed");
  }

  function mine(m) { return m.ticket === spec.ticket; }
  Fleetport.live.on("ticket.comment", function (m) { if (mine(m)) { apply(m); refreshTimeline(); } });
  Fleetport.live.on("ticket.updated", function (m) { if (mine(m)) { apply(m); refreshTimeline(); } });
  Fleetport.live.on("ticket.sla", function (m) { if (mine(m)) { apply(m); } });

  // Plotly draws a time as the wall-clock time it is given: the reader's, as the page's dates are
  // (sv-SE writes "2026-12-07 15:00:00", a form Plotly reads).
  function wallClock(iso) { return new Date(iso).toLocaleString("sv-SE", { timeZone: Fleetport.format.timeZone }); }

  if (spec.asset && window.Plotly) {
    Fleetport.live.subscribe("asset", spec.asset);
    Fleetport.live.on("asset.status", function (m) {
      if (m.asset !== spec.asset) { return; }
      setText("asset-status", LABELS[m.status] || m.status);
      if (m.last_seen_at) {
        var seen = field("last-seen");
        seen.setAttribute("datetime", m.last_seen_at);
        seen.textContent = Fleetport.format.whenSeconds(m.last_seen_at);
        show("last-seen-part", true);
      }
    });
    // The machine's recent alarms, as the server lists them (rare: only when one comes or goes).
    ["alarm.raised", "alarm.cleared"].forEach(function (type) {
      Fleetport.live.on(type, function (m) { if (m.asset === spec.asset) { Fleetport.refreshParts(["#ticket-alarms"]); } });
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
          // The title is a heading above the plot, where Plotly's toolbar never covers it.
          Fleetport.chartTitle(el, g.label + " — last 24 h" + (g.unit ? " (" + g.unit + ")" : ""));
          Plotly.newPlot(el, [{ type: "scatter", mode: "lines", x: points.map(function (p) { return wallClock(p.t || p.bucket); }),
            y: points.map(function (p) { return p.avg !== undefined ? p.avg : p.value; }) }], {
            height: 220, margin: { l: 44, r: 10, t: 12, b: 48 }, showlegend: false, xaxis: { type: "date", range: [wallClock(from.toISOString()), wallClock(to.toISOString())] },
            paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: { family: "system-ui, sans-serif", size: 11 }
          }, { responsive: true, displaylogo: false });
        })
        .catch(function () { el.textContent = "No telemetry to show."; });
    });
  }
  Fleetport.live.start();
})();
