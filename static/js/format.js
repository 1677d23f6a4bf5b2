/* Fleetport.format: figures written exactly as the server writes them (portal/formatting.py),
 * for live updates. The locale and the unit table come from the page (#format-spec, rendered
 * by the server); the number rules come from the browser's Intl (CLDR, as Babel's are).
 *   Fleetport.format.money("11539.38", "EUR")   → "€11,539.38"
 *   Fleetport.format.quantity("1356.341257", "h") → "1,356.34 h"
 *   Fleetport.format.percent("99.5")             → "99.5 %"
 * Amounts arrive as decimal strings; they are rounded by Intl, never summed here. */
(function () {
  "use strict";
  var specNode = document.getElementById("format-spec");
  var spec = specNode ? JSON.parse(specNode.textContent) : {};
  var locale = spec.locale || "en";
  var unitDecimals = spec.unit_decimals || {};
  var defaultDecimals = spec.default_decimals === undefined ? 2 : spec.default_decimals;
  var NBSP = "\u00a0";

  function num(value) {
    return typeof value === "number" ? value : Number(value);
  }

  function decimalsFor(unit) {
    var key = (unit || "").trim();
    return Object.prototype.hasOwnProperty.call(unitDecimals, key) ? unitDecimals[key] : defaultDecimals;
  }

  function number(value, decimals) {
    if (value === null || value === undefined || value === "") { return ""; }
    return new Intl.NumberFormat(locale, {
      minimumFractionDigits: decimals, maximumFractionDigits: decimals
    }).format(num(value));
  }

  function money(value, currency) {
    if (value === null || value === undefined || value === "") { return ""; }
    return new Intl.NumberFormat(locale, { style: "currency", currency: currency }).format(num(value));
  }

  function moneyPlain(value, currency) {
    if (value === null || value === undefined || value === "") { return ""; }
    var digits = new Intl.NumberFormat(locale, { style: "currency", currency: currency })
      .resolvedOptions().maximumFractionDigits;
    return number(value, digits);
  }

  function quantity(value, unit) {
    if (value === null || value === undefined || value === "") { return ""; }
    var text = number(value, decimalsFor(unit));
    return unit ? text + NBSP + unit : text;
  }

  function percent(value, decimals) {
    if (value === null || value === undefined || value === "") { return ""; }
    var d = decimals === undefined ? 2 : decimals;
    return new Intl.NumberFormat(locale, { minimumFractionDigits: 0, maximumFractionDigits: d })
      .format(num(value)) + NBSP + "%";
  }

  window.Fleetport = window.Fleetport || {};
  window.Fleetport.format = {
    locale: locale, number: number, money: money, moneyPlain: moneyPlain,
    quantity: quantity, percent: percent, decimalsFor: decimalsFor
  };
})();
