/* The revenue page: billed amounts per month by customer, and billed usage per metric (Plotly). */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("revenue-data").textContent);
  // Plotly reads its texts as a little HTML (<b>, <br>, <a href>): data goes in as plain text.
  function plain(text) { return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }
  var config = { responsive: true, displaylogo: false };
  var base = { barmode: "stack", height: 320, margin: { l: 60, r: 16, t: 40, b: 40 }, paper_bgcolor: "rgba(0,0,0,0)",
               plot_bgcolor: "rgba(0,0,0,0)", font: { family: "system-ui, sans-serif", size: 12 }, xaxis: { type: "category" } };
  function traces(series) {
    return Object.keys(series).sort().map(function (name) {
      var months = Object.keys(series[name]).sort();
      return { type: "bar", name: plain(name), x: months, y: months.map(function (m) { return Number(series[name][m]); }) };
    });
  }
  Plotly.newPlot("revenue-chart", traces(data.revenue), Object.assign({ title: { text: "Billed per month by customer" } }, base), config);
  var box = document.getElementById("usage-charts");
  Object.keys(data.usage).sort().forEach(function (metric) {
    var el = document.createElement("div"); el.className = "chart"; box.appendChild(el);
    var months = Object.keys(data.usage[metric]).sort();
    Plotly.newPlot(el, [
      { type: "bar", name: "quantity", x: months, y: months.map(function (m) { return Number(data.usage[metric][m]); }) },
      { type: "scatter", mode: "lines+markers", name: "amount", yaxis: "y2", x: months,
        y: months.map(function (m) { return Number(data.usage_amount[metric][m]); }) }
    ], Object.assign({}, base, { title: { text: "Billed " + plain(metric) + " per month" }, barmode: "group",
      yaxis2: { overlaying: "y", side: "right", title: { text: "amount" } } }), config);
  });
})();
