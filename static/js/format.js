/* Fleetport.format: figures written exactly as the server writes them (portal/formatting.py),
 * for live updates. The locale and the unit table come from the page (#format-spec, rendered
 * by the server); the number rules come from the browser's Intl (CLDR, as Babel's are).
 *   Fleetport.format.money("11539.38", "EUR")   → "€11,539.38"
 *   Fleetport.format.quantity("1356.341257", "h") → "1,356.34 h"
 *   Fleetport.format.reading(7.4, "bar")          → "7.40" (the unit shown apart)
 *   Fleetport.format.percent("99.5")             → "99.5 %"
 *   Fleetport.format.when("2026-12-07T07:47:16Z") → "Dec 7, 2026, 08:47" (in Europe/Berlin)
 *   Fleetport.format.whenSeconds(iso)             → "Dec 7, 2026, 08:47:16"
 *   Fleetport.format.day("2026-12-07")            → "Dec 7, 2026"
 *   Fleetport.format.dayWeekday("2026-12-07")     → "Mon, Dec 7, 2026"
 * Amounts arrive as decimal strings and go to Intl as strings: Intl formats them as exact
 * decimals (no float in between) and rounds half away from zero, as the server does (it rounds
 * half up before Babel). Every space the locale writes becomes U+00A0, as on the server
 * (Babel and ICU disagree on U+202F for some locales). Nothing is summed here.
 * Dates and times are shown in the time zone the server used (#format-spec time_zone), with
 * Intl options that are the server's CLDR skeletons (yMMMd, Hm, Hms; portal/formatting.py). */
(function () {
  "use strict";
  var specNode = document.getElementById("format-spec");
  var spec = specNode ? JSON.parse(specNode.textContent) : {};
  var locale = spec.locale || "en";
  var unitDecimals = spec.unit_decimals || {};
  var defaultDecimals = spec.default_decimals === undefined ? 2 : spec.default_decimals;
  var percentDecimals = spec.percent_decimals === undefined ? 2 : spec.percent_decimals;
  var maxPriceDecimals = spec.max_price_decimals === undefined ? 6 : spec.max_price_decimals;
  var timeZone = spec.time_zone || document.body.getAttribute("data-time-zone") || "UTC";
  var NBSP = "\u00a0";
  var cache = {};

  function empty(value) { return value === null || value === undefined || value === ""; }

  function exact(value) {  // what Intl reads as an exact decimal
    return typeof value === "string" ? value.trim() : String(value);
  }

  function spaces(text) { return text.replace(/[\u202f\u2009 ]/g, NBSP); }

  function formatter(key, options) {
    var id = key + JSON.stringify(options);
    if (!cache[id]) {
      try {
        cache[id] = new Intl.NumberFormat(locale, options);
      } catch (e) {  // a locale the browser lacks: write it as the server's fallback does
        cache[id] = new Intl.NumberFormat("en", options);
      }
    }
    return cache[id];
  }

  function decimalsFor(unit) {
    var key = (unit || "").trim();
    return Object.prototype.hasOwnProperty.call(unitDecimals, key) ? unitDecimals[key] : defaultDecimals;
  }

  function minorDigits(currency) {
    return formatter("c", { style: "currency", currency: currency }).resolvedOptions().maximumFractionDigits;
  }

  function number(value, decimals) {
    if (empty(value)) { return ""; }
    return spaces(formatter("n", {
      minimumFractionDigits: decimals, maximumFractionDigits: decimals, useGrouping: "always",
      roundingMode: "halfExpand"
    }).format(exact(value)));
  }

  function money(value, currency) {
    if (empty(value)) { return ""; }
    var digits = minorDigits(currency);
    return spaces(formatter("m", {
      style: "currency", currency: currency, minimumFractionDigits: digits, maximumFractionDigits: digits,
      useGrouping: "always", roundingMode: "halfExpand"
    }).format(exact(value)));
  }

  function moneyPlain(value, currency) {
    if (empty(value)) { return ""; }
    return number(value, minorDigits(currency));
  }

  function ownDecimals(value) {  // "4.500000" → 1, "0.185" → 3, "12" → 0
    var text = exact(value).replace(/^[-+]/, "");
    if (/e/i.test(text)) { text = Number(text).toFixed(maxPriceDecimals); }
    var dot = text.indexOf(".");
    return dot < 0 ? 0 : text.slice(dot + 1).replace(/0+$/, "").length;
  }

  function price(value, currency) {
    if (empty(value)) { return ""; }
    var decimals = Math.min(Math.max(minorDigits(currency), ownDecimals(value)), maxPriceDecimals);
    return number(value, decimals);
  }

  function reading(value, unit) { return number(value, decimalsFor(unit)); }

  function quantity(value, unit) {
    if (empty(value)) { return ""; }
    var text = reading(value, unit);
    return unit ? text + NBSP + unit : text;
  }

  function percent(value, decimals) {
    if (empty(value)) { return ""; }
    var d = decimals === undefined ? percentDecimals : decimals;
    return spaces(formatter("p", {
      minimumFractionDigits: 0, maximumFractionDigits: d, useGrouping: "always", roundingMode: "halfExpand"
    }).format(exact(value))) + NBSP + "%";
  }

  var DAY = { year: "numeric", month: "short", day: "numeric" };
  var WEEKDAY = Object.assign({ weekday: "short" }, DAY);
  var TIMES = {
    minutes: { hour: "2-digit", minute: "2-digit", hourCycle: "h23" },
    seconds: { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }
  };

  function dateFormatter(precision, zone) {
    var id = "d" + precision + zone;
    if (!cache[id]) {
      var options = Object.assign({ timeZone: zone }, precision === "weekday" ? WEEKDAY : DAY, TIMES[precision] || {});
      var tag = "en";  // a locale the browser lacks: written as the server's fallback does
      try { tag = Intl.DateTimeFormat.supportedLocalesOf([locale]).length ? locale : "en"; } catch (e) { /* en */ }
      try {
        cache[id] = new Intl.DateTimeFormat(tag, options);
      } catch (e) {  // a zone the browser lacks: UTC
        options.timeZone = "UTC";
        cache[id] = new Intl.DateTimeFormat(tag, options);
      }
    }
    return cache[id];
  }

  function when(value, precision) {
    if (empty(value)) { return ""; }
    var text = String(value).trim();
    // A date alone ("2026-12-07") is a calendar day, not a moment: written as it is, in UTC.
    var dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(text);
    var moment = new Date(dateOnly ? text + "T00:00:00Z" : text);
    if (isNaN(moment.getTime())) { return text; }
    var formatter = dateFormatter(dateOnly && precision !== "weekday" ? "day" : precision, dateOnly ? "UTC" : timeZone);
    return formatter.format(moment).replace(/[\u202f\u2009]/g, NBSP);
  }

  // A chart's title as a heading above the chart, where Plotly's toolbar (top right of the
  // plot) never covers it at any width: el is wrapped with its heading once, then retitled.
  function chartTitle(el, text) {
    var title = el.previousElementSibling;
    if (!title || !title.classList.contains("chart-title")) {
      var box = document.createElement("div");
      box.className = "chart-box";
      title = document.createElement("h3");
      title.className = "chart-title";
      el.replaceWith(box);
      box.append(title, el);
    }
    title.textContent = text;
    return title;
  }

  window.Fleetport = window.Fleetport || {};
  window.Fleetport.chartTitle = chartTitle;
  window.Fleetport.format = {
    locale: locale, number: number, money: money, moneyPlain: moneyPlain, price: price,
    quantity: quantity, reading: reading, percent: percent, decimalsFor: decimalsFor, minorDigits: minorDigits,
    timeZone: timeZone,
    when: function (iso) { return when(iso, "minutes"); },
    whenSeconds: function (iso) { return when(iso, "seconds"); },
    day: function (iso) { return when(iso, "day"); },
    dayWeekday: function (iso) { return when(iso, "weekday"); }
  };
})();
