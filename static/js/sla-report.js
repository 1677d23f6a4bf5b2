/* The SLA report: first responses within SLA per month and customer (Plotly). */
(function () {
  "use strict";
  // Plotly reads its texts as a little HTML (<b>, <br>, <a href>): data goes in as plain text.
  function plain(text) { return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }
  var data = JSON.parse(document.getElementById("sla-data").textContent);
  var traces = Object.keys(data).sort().map(function (name) {
    var months = Object.keys(data[name]).sort();
    return { type: "bar", name: plain(name), x: months, y: months.map(function (m) { return data[name][m]; }) };
  });
  Plotly.newPlot("sla-chart", traces, {
    barmode: "group", height: 300,
    yaxis: { range: [0, 100] }, xaxis: { type: "category" }, margin: { l: 50, r: 16, t: 16, b: 40 },
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: { family: "system-ui, sans-serif", size: 12 }
  }, { responsive: true, displaylogo: false });
})();
