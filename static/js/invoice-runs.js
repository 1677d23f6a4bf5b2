/* Invoice runs, live: each run's progress, and the row of a run started elsewhere. */
(function () {
  "use strict";
  var STATUS = { queued: "Queued", running: "Running", done: "Done", failed: "Failed" };
  // A run started elsewhere (another tab, a colleague, the monthly beat task) gets its row
  // here. Never reload the page for it: that would cancel a form this page is submitting.
  function addRow(m) {
    var row = document.getElementById("run-row").content.firstElementChild.cloneNode(true);
    var link = row.querySelector('[data-field="period"]');
    row.setAttribute("data-run", m.run);
    link.textContent = m.period;
    link.href += "?period=" + encodeURIComponent(m.period);
    var started = row.querySelector('[data-field="started"]');
    started.setAttribute("datetime", m.started);
    started.textContent = Fleetport.format.when(m.started);  // as the server's |when
    row.querySelector('[data-field="by"]').textContent = m.started_by || "system";
    document.querySelector("#runs tbody").prepend(row);
    document.querySelector("#runs").closest(".table-wrap").hidden = false;
    var empty = document.getElementById("no-runs");
    if (empty) { empty.remove(); }
    return row;
  }
  function show(m) {
    var row = document.querySelector('tr[data-run="' + m.run + '"]') || addRow(m);
    row.querySelector('[data-field="bar"]').value = m.percent;
    row.querySelector('[data-field="status"]').textContent = STATUS[m.status] || m.status;
    row.querySelector('[data-field="count"]').textContent = m.processed + "/" + m.total;
    ["created", "updated", "skipped"].forEach(function (k) { row.querySelector('[data-field="' + k + '"]').textContent = m[k]; });
    var error = row.querySelector('[data-field="error"]');
    error.textContent = m.error || "";
    error.hidden = !m.error;
    // A failed run gets the page's retry form (its CSRF token rendered in the template).
    var retry = row.querySelector('[data-field="retry"]');
    if (m.status === "failed" && !retry) {
      retry = document.getElementById("run-retry").content.firstElementChild.cloneNode(true);
      retry.action = retry.getAttribute("data-base") + m.run + "/retry/";
      error.after(retry);
    }
    if (m.status !== "failed" && retry) { retry.remove(); }
  }
  Fleetport.live.on("invoice_run.progress", show);
  // On every (re)connect, catch up on what happened while the socket was away.
  Fleetport.live.on("hello", function () {
    document.querySelectorAll("tr[data-run]").forEach(function (row) {
      var state = row.querySelector('[data-field="status"]').textContent;
      if (state !== "Queued" && state !== "Running") { return; }
      fetch("/api/v1/invoice-runs/" + row.getAttribute("data-run") + "/", { credentials: "same-origin",
            headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (run) {
          if (run) { show({ run: run.id, percent: run.percent, status: run.status, processed: run.processed,
                            total: run.total, created: run.created_count, updated: run.updated_count,
                            skipped: run.skipped_count, error: run.error }); }
        });
    });
  });
  Fleetport.live.start();
})();
