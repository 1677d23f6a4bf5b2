// The plan editor and the negotiated-price form: "Add a tier row" adds the row in the page (the
// button otherwise posts the form back for one more row, which works without JavaScript), and
// the tier rows show only for the charge models that have tiers.
(function () {
  "use strict";

  var TIERED = ["graduated", "volume"];

  function scopeOf(element) {
    return element.closest("[data-component]") || element.closest("form");
  }

  function addTierRow(button) {
    var scope = scopeOf(button);
    var body = button.closest("[data-tiers]").querySelector("[data-tier-rows]");
    var counter = scope.querySelector('input[name$="tier_rows"]');
    var rows = body.querySelectorAll("[data-tier-row]");
    if (!counter || !rows.length) return false;
    var index = rows.length;
    var row = rows[rows.length - 1].cloneNode(true);
    row.querySelectorAll(".error").forEach(function (node) { node.remove(); });
    row.querySelectorAll("input").forEach(function (input) {
      ["name", "id"].forEach(function (attr) {
        var value = input.getAttribute(attr);
        if (value) input.setAttribute(attr, value.replace(/tier_\d+_/, "tier_" + index + "_"));
      });
      var label = input.getAttribute("aria-label");
      if (label) input.setAttribute("aria-label", label.replace(/Tier \d+/, "Tier " + (index + 1)));
      input.value = "";
    });
    body.appendChild(row);
    counter.value = String(index + 1);
    row.querySelector("input").focus();
    return true;
  }

  function showTiers(select) {
    var fieldset = scopeOf(select).querySelector("[data-tiers]");
    if (fieldset) fieldset.hidden = TIERED.indexOf(select.value) < 0;
  }

  document.querySelectorAll("[data-plan-editor]").forEach(function (form) {
    form.addEventListener("click", function (event) {
      var button = event.target.closest("[data-add-tier]");
      if (button && addTierRow(button)) event.preventDefault();
    });
    form.addEventListener("change", function (event) {
      if (event.target.matches('select[name$="charge_model"]')) showTiers(event.target);
    });
    form.querySelectorAll('select[name$="charge_model"]').forEach(function (select) {
      // Tiers with an error stay in sight whatever the charge model says.
      var fieldset = scopeOf(select).querySelector("[data-tiers]");
      if (fieldset && !fieldset.querySelector(".error")) showTiers(select);
    });
  });
})();
