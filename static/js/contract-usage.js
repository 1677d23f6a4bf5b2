/* A contract's usage this month: daily bars per meter (Plotly) and, for the running month, the
 * figures refreshed live — a `usage.updated` event for one of the covered assets triggers one
 * fetch of /api/v1/contracts/<id>/usage/ (at most every few seconds). */
(function () {
  "use strict";
  var script = document.currentScript;
  var spec = JSON.parse(document.getElementById("contract-spec").textContent);
  var live = script.getAttribute("data-live") === "1";
  var url = "/api/v1/contracts/" + spec.contract + "/usage/?period=" + encodeURIComponent(spec.period);
  var charts = document.getElementById("usage-charts");
  var covered = {};
  spec.assets.forEach(function (id) { covered[id] = true; });
  var config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

  // Plotly reads its texts as a little HTML (<b>, <br>, <a href>): data goes in as plain text.
  function plain(text) { return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }

  function fetchJson(u) {
    return fetch(u, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); });
  }

  function setField(root, name, text) {
    root.querySelectorAll('[data-field="' + name + '"]').forEach(function (el) { el.textContent = text; });
  }

  // Amounts arrive as decimal strings with the currency's two decimals (the API's DecimalField):
  // the month-end adjustments row is what the projection adds beyond fee and meters, worked out
  // in whole minor units (BigInt), never in floats.
  function minor(value) { return BigInt(String(value).replace(".", "")); }
  function fromMinor(units) {
    var negative = units < 0n;
    var digits = (negative ? -units : units).toString().padStart(3, "0");
    return (negative ? "-" : "") + digits.slice(0, -2) + "." + digits.slice(-2);
  }

  function draw(data) {
    spec.meters.forEach(function (meter) {
      var id = "usage-chart-" + meter.metric;
      var el = document.getElementById(id);
      if (!el) {
        el = document.createElement("div");
        el.id = id;
        el.className = "chart";
        el.setAttribute("data-testid", "usage-chart");
        charts.appendChild(el);
      }
      // The title above the chart, where Plotly's toolbar cannot cover it.
      window.Fleetport.chartTitle(el, meter.label + " per day (" + (meter.unit || "units") + ")");
      var days = data.daily.filter(function (d) { return d.metric === meter.metric; });
      var trace = { type: "bar", x: days.map(function (d) { return d.day + " 12:00"; }), width: 0.8 * 86400e3,
                    y: days.map(function (d) { return Number(d.quantity); }), marker: { color: "#2563eb" },
                    customdata: days.map(function (d) { return plain(window.Fleetport.format.quantity(d.quantity, meter.unit)); }),
                    hovertemplate: "%{x|%-d %b}: %{customdata}<extra></extra>" };
      var layout = { margin: { l: 50, r: 16, t: 28, b: 36 }, height: 240, showlegend: false,
                     xaxis: { type: "date", range: [spec.days[0] + " 00:00", spec.days[1] + " 23:59"],
                              tickformat: "%-d %b" },
                     yaxis: { rangemode: "tozero" }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
                     font: { family: "system-ui, sans-serif", size: 12 } };
      if (!days.length) {
        layout.annotations = [{ text: "No usage metered yet this month", showarrow: false, xref: "paper",
                                yref: "paper", x: 0.5, y: 0.5 }];
      }
      window.Plotly.react(el, [trace], layout, config);
    });
  }

  function render(data) {
    var format = window.Fleetport.format;
    var currency = data.currency;
    var section = document.getElementById("usage");
    setField(section, "subtotal_so_far", format.moneyPlain(data.subtotal_so_far, currency));
    setField(section, "projected_subtotal", format.moneyPlain(data.projected_subtotal, currency));
    setField(section, "period_fee", format.moneyPlain(data.period_fee, currency));
    setField(section, "projected_period_fee", format.moneyPlain(data.period_fee, currency));
    setField(section, "uptime", data.uptime === null ? "—" : format.percent(data.uptime));
    var adjustments = minor(data.projected_subtotal) - minor(data.period_fee);
    data.meters.forEach(function (m) {
      adjustments -= minor(m.projected_amount);
      var row = section.querySelector('tr[data-metric="' + m.metric + '"]');
      if (!row) { return; }
      setField(row, "quantity", format.quantity(m.quantity, m.unit));
      setField(row, "amount", format.moneyPlain(m.amount, currency));
      setField(row, "projected_quantity", format.quantity(m.projected_quantity, m.unit));
      setField(row, "projected_amount", format.moneyPlain(m.projected_amount, currency));
    });
    var adjustmentRow = section.querySelector('tr[data-row="adjustments"]');
    if (adjustmentRow) {
      setField(adjustmentRow, "projected_adjustments", format.moneyPlain(fromMinor(adjustments), currency));
      adjustmentRow.hidden = adjustments === 0n;
    }
    draw(data);
  }

  var pending = null;
  var lastFetch = 0;
  var MIN_GAP_MS = 3000;
  function refreshSoon() {
    if (pending) { return; }
    var wait = Math.max(0, lastFetch + MIN_GAP_MS - Date.now());
    pending = setTimeout(function () {
      pending = null;
      lastFetch = Date.now();
      fetchJson(url).then(render).catch(function () { /* the stale indicator tells */ });
    }, wait);
  }

  lastFetch = Date.now();
  fetchJson(url).then(render).catch(function () {
    var note = document.createElement("p");
    note.className = "empty";
    note.textContent = "The usage chart could not be loaded. Reload the page to try again.";
    charts.replaceChildren(note);
  });
  var period = document.querySelector('#usage select[name="period"]');
  if (period) { period.addEventListener("change", function () { period.form.submit(); }); }
  if (live) {
    window.Fleetport.live.on("usage.updated", function (m) { if (covered[m.asset]) { refreshSoon(); } });
    window.Fleetport.live.start();
  }
})();
