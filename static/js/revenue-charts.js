/* The revenue page: for each currency on its own, net revenue per month by customer and billed
 * usage per meter (Plotly). Figures of two currencies never share an axis or a sum. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("revenue-data").textContent);
  var format = window.Fleetport.format;
  // Plotly reads its texts as a little HTML (<b>, <br>, <a href>): data goes in as plain text.
  function plain(text) { return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }
  var config = { responsive: true, displaylogo: false };
  function base() {
    return { barmode: "relative", height: 320, margin: { l: 70, r: 60, t: 28, b: 40 }, paper_bgcolor: "rgba(0,0,0,0)",
             plot_bgcolor: "rgba(0,0,0,0)", font: { family: "system-ui, sans-serif", size: 12 },
             xaxis: { type: "category" }, legend: { orientation: "h", y: -0.2 } };
  }
  function bars(name, series, label) {
    var months = Object.keys(series).sort();
    return { type: "bar", name: plain(name), x: months, y: months.map(function (m) { return Number(series[m]); }),
             customdata: months.map(function (m) { return plain(label(series[m])); }),
             hovertemplate: plain(name) + ", %{x}: %{customdata}<extra></extra>" };
  }

  data.currencies.forEach(function (c) {
    var money = function (v) { return format.money(v, c.currency); };
    var customers = Object.keys(c.net).sort().map(function (name) { return bars(name, c.net[name], money); });
    // Titles above the charts (Fleetport.chartTitle): Plotly's toolbar never covers them.
    var net = document.getElementById("revenue-chart-" + c.currency);
    window.Fleetport.chartTitle(net, "Net per month (" + c.currency + ")");
    Plotly.newPlot(net, customers, Object.assign(base(), {
      showlegend: true,
      yaxis: { title: { text: plain(c.currency) }, rangemode: "tozero" } }), config);

    var box = document.getElementById("usage-charts-" + c.currency);
    c.meters.forEach(function (meter) {
      var el = document.createElement("div");
      el.className = "chart";
      el.setAttribute("data-testid", "meter-chart");
      box.appendChild(el);
      window.Fleetport.chartTitle(el, meter.name + " (" + c.currency + ")");
      var quantity = bars(meter.name + " (" + (meter.unit || "units") + ")", meter.quantity,
                          function (v) { return format.quantity(v, meter.unit); });
      var months = Object.keys(meter.amount).sort();
      var amount = { type: "scatter", mode: "lines+markers", name: plain("amount (" + c.currency + ")"), yaxis: "y2",
                     x: months, y: months.map(function (m) { return Number(meter.amount[m]); }),
                     customdata: months.map(function (m) { return plain(money(meter.amount[m])); }),
                     hovertemplate: "%{x}: %{customdata}<extra></extra>" };
      Plotly.newPlot(el, [quantity, amount], Object.assign(base(), {
        barmode: "group",
        yaxis: { title: { text: plain(meter.unit || "units") }, rangemode: "tozero" },
        yaxis2: { overlaying: "y", side: "right", title: { text: plain(c.currency) }, rangemode: "tozero" } }), config);
    });
  });
})();
