/* plotly.js (4.8 MB to parse) on demand, after the page's load event: the page shows and works
 * without waiting for it, and a page that never draws a chart never loads it.
 * Fleetport.plotly() → a promise of window.Plotly. The file's URL (hashed) is the
 * data-plotly attribute of this script's tag. */
(function () {
  "use strict";
  var src = document.currentScript.getAttribute("data-plotly");
  var loading = null;
  var loaded = new Promise(function (resolve) {
    if (document.readyState === "complete") { resolve(); } else { window.addEventListener("load", function () { resolve(); }); }
  });
  window.Fleetport = window.Fleetport || {};
  window.Fleetport.plotly = function () {
    if (window.Plotly) { return Promise.resolve(window.Plotly); }
    if (!loading) {
      loading = loaded.then(function () {
        return new Promise(function (resolve, reject) {
          var script = document.createElement("script");
          script.src = src;
          script.addEventListener("load", function () { resolve(window.Plotly); });
          script.addEventListener("error", function (e) { loading = null; reject(e); });
          document.head.appendChild(script);
        });
      });
    }
    return loading;
  };
})();
