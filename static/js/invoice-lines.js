/* Billing provenance: under a usage line, the hourly usage it was computed from (Plotly). */
(function () {
  "use strict";
  var spec = JSON.parse(document.getElementById("invoice-spec").textContent);
  // Plotly reads its texts as a little HTML (<b>, <br>, <a href>): data goes in as plain text.
  function plain(text) { return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }
  var config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

  document.querySelectorAll("[data-provenance]").forEach(function (button) {
    button.addEventListener("click", function () {
      var line = button.getAttribute("data-provenance");
      var box = document.getElementById("provenance-" + line);
      var row = document.getElementById("provenance-row-" + line);
      var open = row.hidden;
      row.hidden = !open;
      button.setAttribute("aria-expanded", open ? "true" : "false");
      if (!open || box.getAttribute("data-drawn")) { return; }
      box.setAttribute("data-drawn", "1");
      var usage = fetch("/api/v1/invoices/" + spec.invoice + "/lines/" + line + "/usage/",
                        { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); });
      Promise.all([usage, Fleetport.plotly()])  // plotly.js once a chart opens
        .then(function (loaded) {
          var data = loaded[0];
          var byAsset = {};
          data.hours.forEach(function (h) {
            (byAsset[h.serial_number] = byAsset[h.serial_number] || { x: [], y: [], text: [] });
            byAsset[h.serial_number].x.push(h.hour.slice(0, 19));
            byAsset[h.serial_number].y.push(Number(h.quantity));
            byAsset[h.serial_number].text.push(plain(window.Fleetport.format.quantity(h.quantity, button.getAttribute("data-unit") || "")));
          });
          var traces = Object.keys(byAsset).map(function (serial) {
            return { type: "bar", name: plain(serial), x: byAsset[serial].x, y: byAsset[serial].y,
                     customdata: byAsset[serial].text, hovertemplate: "%{x}: %{customdata}<extra>" + plain(serial) + "</extra>" };
          });
          var unit = button.getAttribute("data-unit") || "units";
          // The title above the chart, where Plotly's toolbar cannot cover it.
          window.Fleetport.chartTitle(box, window.Fleetport.format.quantity(data.quantity, button.getAttribute("data-unit") || "") +
                           (button.getAttribute("data-unit") ? "" : " " + unit) + " in " +
                           window.Fleetport.format.number(data.hours.length, 0) + " metered hours");
          Plotly.newPlot(box, traces, {
            barmode: "stack", height: 240, margin: { l: 50, r: 16, t: 28, b: 36 }, xaxis: { type: "date" },
            paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", showlegend: traces.length > 1,
            font: { family: "system-ui, sans-serif", size: 12 }
          }, config);
        })
        .catch(function () { box.textContent = "The hourly usage could not be loaded."; });
    });
  });
})();
