/* The asset page: live values and status, Plotly charts of each gauge over a chosen range
 * (raw readings, or min/avg/max per bucket), new readings appended live, and usage bars.
 * Every part the server renders follows the live messages: values and last seen (written by
 * Fleetport.format as the server writes them), charts (a chart without readings loads again
 * when readings arrive), usage (fetched again when counters report), and the alarms, status
 * history and maintenance panels (taken from the server's page again when an alarm, the
 * status or a window changes, or a window begins or ends). Chart titles sit above the charts,
 * where Plotly's toolbar cannot cover them.
 * plotly.js comes after the page's load event (plotly-loader.js): values, status and alarms
 * do not wait for it; the charts' data is fetched meanwhile. */
(function () {
  "use strict";
  var script = document.currentScript;
  var assetId = script.getAttribute("data-asset");
  var spec = JSON.parse(document.getElementById("metric-spec").textContent);
  var gauges = spec.filter(function (m) { return m.kind === "gauge"; });
  var counters = spec.filter(function (m) { return m.kind === "counter"; });
  var api = "/api/v1/assets/" + assetId + "/";
  var zone = Fleetport.format.timeZone;  // the zone the server wrote the page in
  var RANGES = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
  var current = { range: "1h", raw: {} };
  var LABELS = { online: "Online", warning: "Warning", fault: "Fault", offline: "Offline",
                 never_seen: "Never seen", decommissioned: "Decommissioned" };
  var BADGES = { online: "badge-ok", warning: "badge-warn", fault: "badge-bad", offline: "badge-bad",
                 never_seen: "badge-muted", decommissioned: "badge-muted" };
  var layoutBase = {
    margin: { l: 50, r: 16, t: 28, b: 36 }, height: 240, showlegend: false,
    xaxis: { type: "date" }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    font: { family: "system-ui, sans-serif", size: 12 }
  };
  // Health rules' forecasts (fleet/templates/fleet/panels/_health.html): per metric, a dashed
  // line from the fitted value now to the limit at the expected time.
  var forecastEl = document.getElementById("health-forecast");
  var forecasts = forecastEl ? JSON.parse(forecastEl.textContent) : [];
  var config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

  // Plotly reads its texts as a little HTML (<b>, <br>, <a href>): data goes in as plain text.
  function plain(text) { return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }

  function emptyNote(el, text) {
    var note = document.createElement("p");
    note.className = "empty";
    note.textContent = text;
    el.replaceChildren(note);
  }

  function fetchJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); });
  }

  // Plotly draws dates in the browser's zone; shift to the user's zone for display.
  function local(iso) {
    var d = new Date(iso);
    var parts = new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false }).formatToParts(d);
    var p = {}; parts.forEach(function (x) { p[x.type] = x.value; });
    return p.year + "-" + p.month + "-" + p.day + " " + (p.hour === "24" ? "00" : p.hour) + ":" + p.minute + ":" + p.second;
  }

  function normalShapes(m) {
    var shapes = [];
    [m.min, m.max].forEach(function (y) {
      if (y !== null) {
        shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: y, y1: y,
                      line: { color: "#b45309", width: 1, dash: "dot" } });
      }
    });
    return shapes;
  }

  function drawGauge(m, data) {
    var el = document.querySelector('[data-chart="' + m.code + '"]');
    if (!el) { return; }
    if (!data.points.length) {
      Plotly.purge(el);
      emptyNote(el, "No " + m.label.toLowerCase() + " readings in this range.");
      el.setAttribute("data-points", "0");
      return;
    }
    if (el.querySelector(".empty")) { el.replaceChildren(); }
    var title = document.querySelector('[data-chart-title="' + m.code + '"]');
    if (title) { title.textContent = m.label + (m.unit ? " (" + m.unit + ")" : "") + " · " + data.resolution; }
    var traces;
    if (data.resolution === "raw") {
      current.raw[m.code] = true;
      traces = [{ x: data.points.map(function (p) { return local(p.t); }),
                  y: data.points.map(function (p) { return p.value; }),
                  mode: "lines", line: { color: "#0f766e", width: 2 }, name: plain(m.label) }];
    } else {
      current.raw[m.code] = false;
      var x = data.points.map(function (p) { return local(p.t); });
      traces = [
        { x: x, y: data.points.map(function (p) { return p.min; }), mode: "lines", line: { width: 0 }, name: "min", hoverinfo: "y" },
        { x: x, y: data.points.map(function (p) { return p.max; }), mode: "lines", line: { width: 0 }, fill: "tonexty",
          fillcolor: "rgba(15,118,110,0.15)", name: "max", hoverinfo: "y" },
        { x: x, y: data.points.map(function (p) { return p.avg; }), mode: "lines", line: { color: "#0f766e", width: 2 }, name: "avg" }
      ];
    }
    var shapes = normalShapes(m);
    forecasts.filter(function (f) { return f.metric === m.code; }).forEach(function (f) {
      traces.push({ x: f.points.map(function (p) { return local(p[0]); }),
                    y: f.points.map(function (p) { return p[1]; }),
                    mode: "lines+markers", line: { color: "#b91c1c", width: 2, dash: "dash" },
                    name: plain("forecast: " + f.name), hoverinfo: "x+y+name" });
      if (f.limit !== null) {
        shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: f.limit, y1: f.limit,
                      line: { color: "#b91c1c", width: 1, dash: "dot" } });
      }
      el.setAttribute("data-forecast", f.metric);
    });
    var layout = Object.assign({}, layoutBase, { shapes: shapes });
    Plotly.react(el, traces, layout, config);
    el.setAttribute("data-points", String(data.points.length));
  }

  function loadChart(m, fromMs, toMs) {
    var from = new Date(fromMs).toISOString(), to = new Date(toMs).toISOString();
    return Promise.all([fetchJson(api + "telemetry/?metric=" + encodeURIComponent(m.code) + "&from=" + from + "&to=" + to),
                        Fleetport.plotly()])
      .then(function (loaded) { drawGauge(m, loaded[0]); })
      .catch(function () {
        var el = document.querySelector('[data-chart="' + m.code + '"]');
        if (el) { el.textContent = "Could not load " + m.label + "."; }
      });
  }

  // The CSV link exports what the charts show: the same range, every reading of it.
  var csvLink = document.querySelector("[data-telemetry-csv]");

  function loadCharts(fromMs, toMs) {
    if (csvLink) {
      csvLink.href = api + "telemetry.csv?from=" + new Date(fromMs).toISOString() + "&to=" + new Date(toMs).toISOString();
    }
    current.window = [fromMs, toMs];
    gauges.forEach(function (m) { loadChart(m, fromMs, toMs); });
  }

  // A chart with no readings drawn yet (a new machine's first heartbeat) loads again.
  var reloading = {};
  function reloadEmptyChart(m) {
    var el = document.querySelector('[data-chart="' + m.code + '"]');
    if (!el || el.getAttribute("data-points") !== "0" || reloading[m.code] || current.range === "custom") { return; }
    reloading[m.code] = true;
    var now = Date.now();
    loadChart(m, now - RANGES[current.range], now + 60e3).then(function () { reloading[m.code] = false; });
  }

  // A custom range is the page's own GET form (?from=&to=, checked by the server in the user's
  // zone: a reversed one comes back as a 400 with the field error); the server hands the
  // range it accepted to the page as "chart-range".
  var customRange = JSON.parse(document.getElementById("chart-range").textContent);

  function selectRange(range) {
    current.range = range;
    document.querySelectorAll("[data-range]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-range") === range));
    });
    if (range === "custom") {
      loadCharts(Date.parse(customRange.from), Date.parse(customRange.to));
    } else {
      var now = Date.now();
      loadCharts(now - RANGES[range], now + 60e3);
    }
  }
  document.querySelectorAll('button[type="button"][data-range]').forEach(function (b) {
    b.addEventListener("click", function () { selectRange(b.getAttribute("data-range")); });
  });

  function loadUsage(resolution) {
    current.usage = resolution;
    document.querySelectorAll("[data-usage]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-usage") === resolution));
    });
    var span = resolution === "hour" ? 2 * 86400e3 : 30 * 86400e3;
    var from = new Date(Date.now() - span).toISOString(), to = new Date(Date.now() + 3600e3).toISOString();
    counters.forEach(function (m) {
      var el = document.querySelector('[data-usage-chart="' + m.code + '"]');
      Promise.all([fetchJson(api + "usage/?metric=" + encodeURIComponent(m.code) + "&resolution=" + resolution + "&from=" + from + "&to=" + to),
                   Fleetport.plotly()])
        .then(function (loaded) {
          var data = loaded[0];
          var total = document.querySelector('[data-usage-total="' + m.code + '"]');
          if (total) { total.textContent = data.points.length ? "· total " + Fleetport.format.quantity(data.total, m.unit) : ""; }
          if (!data.points.length) {
            emptyNote(el, "No " + m.label.toLowerCase() + " recorded in this period yet.");
            el.setAttribute("data-points", "0");
            return;
          }
          if (el.querySelector(".empty")) { el.replaceChildren(); }
          var layout = Object.assign({}, layoutBase, { xaxis: { type: "date", range: [local(from), local(to)] } });
          var width = (resolution === "hour" ? 3600e3 : 86400e3) * 0.8;
          Plotly.react(el, [{ type: "bar", x: data.points.map(function (p) { return local(p.period); }),
                              y: data.points.map(function (p) { return Number(p.quantity); }),
                              width: data.points.map(function () { return width; }), offset: 0,
                              marker: { color: "#5eead4" },
                              customdata: data.points.map(function (p) { return plain(Fleetport.format.quantity(p.quantity, m.unit)); }),
                              hovertemplate: "%{customdata}<extra></extra>" }],
                       layout, config);
          el.setAttribute("data-points", String(data.points.length));
        })
        .catch(function () { el.textContent = "Could not load usage."; });
    });
  }
  document.querySelectorAll("[data-usage]").forEach(function (b) {
    b.addEventListener("click", function () { loadUsage(b.getAttribute("data-usage")); });
  });
  // Counters that report have grown the usage (folded in the same commit as the heartbeat):
  // fetch it again, at most every few seconds.
  var usageTimer = null, usageFetchedAt = 0, USAGE_GAP_MS = 3000;
  function refreshUsageSoon() {
    if (usageTimer) { return; }
    usageTimer = window.setTimeout(function () {
      usageTimer = null;
      usageFetchedAt = Date.now();
      loadUsage(current.usage || "hour");
    }, Math.max(0, usageFetchedAt + USAGE_GAP_MS - Date.now()));
  }

  var units = {};
  spec.forEach(function (m) { units[m.code] = m.unit; });

  Fleetport.live.on("asset.values", function (m) {
    if (m.asset !== assetId) { return; }
    var badge = document.getElementById("asset-status");
    if (badge.getAttribute("data-status") !== m.status) {
      // The status history (and an alarm the change raised) as the server lists them.
      Fleetport.refreshParts(["#asset-history", "#asset-alarms"]);
    }
    badge.className = "badge " + (BADGES[m.status] || "badge-muted");
    badge.textContent = LABELS[m.status] || m.status;
    badge.setAttribute("data-status", m.status);
    if (m.last_seen_at) {
      var time = document.createElement("time");
      time.setAttribute("datetime", m.last_seen_at);
      time.textContent = Fleetport.format.whenSeconds(m.last_seen_at);  // the server's |when_seconds
      document.getElementById("asset-last-seen").replaceChildren(time);
    }
    var fault = document.getElementById("asset-fault");
    fault.querySelector("code").textContent = m.fault_code || "";
    fault.hidden = !m.fault_code;
    gauges.forEach(function (g) { if (m.last_values && g.code in m.last_values) { reloadEmptyChart(g); } });
    if (counters.some(function (c) { return m.last_values && c.code in m.last_values; })) { refreshUsageSoon(); }
    Object.keys(m.last_values || {}).forEach(function (code) {
      var el = document.querySelector('.value[data-metric="' + code + '"] [data-value]');
      if (el) { el.textContent = Fleetport.format.reading(m.last_values[code], units[code]); }  // |reading
      // The last-hour view is raw readings: append the new one live.
      var chart = document.querySelector('[data-chart="' + code + '"]');
      if (chart && current.range === "1h" && current.raw[code] && m.last_seen_at) {
        Plotly.extendTraces(chart, { x: [[local(m.last_seen_at)]], y: [[m.last_values[code]]] }, [0]);
        chart.setAttribute("data-points", String(Number(chart.getAttribute("data-points") || 0) + 1));
      }
    });
  });
  function alarmsChanged(m) { if (m.asset === assetId) { Fleetport.refreshParts(["#asset-alarms"]); } }
  Fleetport.live.on("alarm.raised", alarmsChanged);
  Fleetport.live.on("alarm.cleared", alarmsChanged);
  // A window planned, moved, confirmed, cancelled, closed, begun or ended by the clock
  // (docs/maintenance.md): the "Maintenance" card (its "In progress"), the heading's "In
  // maintenance" badge and the alarms (marked in maintenance when a window begins) as the server
  // renders them. The message names the window only (a site- or customer-wide one lists no
  // machines), so any of the customer's windows fetches them again.
  Fleetport.live.on("maintenance.changed", function () {
    Fleetport.refreshParts(["#asset-windows", "#asset-maintenance", "#asset-alarms"]);
  });

  Fleetport.live.subscribe("asset", assetId);
  Fleetport.live.start();
  if (gauges.length && document.querySelector("[data-chart]")) { selectRange(customRange ? "custom" : "1h"); }
  if (counters.length) { loadUsage("hour"); }
})();
