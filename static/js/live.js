/* Fleetport live socket: one connection to /ws/live/, reconnecting with backoff.
 * Pages call Fleetport.live.on(type, handler) and, for an object, subscribe(topic, id).
 * A stale indicator ([data-live-state]) shows whether updates are flowing. No dependencies. */
(function () {
  "use strict";
  var handlers = {};
  var subscriptions = [];
  var socket = null;
  var attempt = 0;
  var lastMessageAt = 0;
  var STALE_AFTER_MS = 60000;

  function setState(state, label) {
    document.querySelectorAll("[data-live-state]").forEach(function (el) {
      el.setAttribute("data-live-state", state);
      var text = el.querySelector(".live-label");
      if (text) { text.textContent = label; }
    });
  }

  function dispatch(message) {
    // One failing handler must not cost the others (or the rest of the frame) their message.
    (handlers[message.type] || []).concat(handlers["*"] || []).forEach(function (fn) {
      try { fn(message); } catch (e) { if (window.console) { window.console.error(e); } }
    });
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) { socket.send(JSON.stringify(message)); }
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + "/ws/live/");
    setState("connecting", attempt ? "Reconnecting…" : "Connecting…");
    socket.onopen = function () {
      attempt = 0;
      lastMessageAt = Date.now();
      setState("live", "Live");
      subscriptions.forEach(function (s) { send({ type: "subscribe", topic: s.topic, id: s.id }); });
    };
    socket.onmessage = function (event) {
      lastMessageAt = Date.now();
      var data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      // A frame is one message or an array of the messages that were ready together.
      (Array.isArray(data) ? data : [data]).forEach(dispatch);
    };
    socket.onclose = function (event) {
      if (event.code === 4401 || event.code === 4403) {
        setState("offline", "Signed out");
        return; // logged out or deactivated: do not reconnect
      }
      attempt += 1;
      var delay = Math.min(30000, 1000 * Math.pow(2, attempt - 1)) * (0.75 + Math.random() / 2);
      setState("stale", "Reconnecting in " + Math.round(delay / 1000) + " s");
      window.setTimeout(connect, delay);
    };
  }

  window.setInterval(function () {
    if (!socket || socket.readyState !== WebSocket.OPEN) { return; }
    send({ type: "ping" });
    if (Date.now() - lastMessageAt > STALE_AFTER_MS) { setState("stale", "No updates"); }
  }, 25000);

  window.Fleetport = window.Fleetport || {};
  window.Fleetport.live = {
    on: function (type, fn) { (handlers[type] = handlers[type] || []).push(fn); },
    subscribe: function (topic, id) {
      subscriptions.push({ topic: topic, id: id });
      send({ type: "subscribe", topic: topic, id: id });
    },
    start: function () { if (!socket) { connect(); } }
  };
  // Put a fragment that our server rendered (and escaped, as every template does) in place of
  // `box`'s content: parsed inertly by DOMParser, never assigned through innerHTML.
  window.Fleetport.replaceWithServerHtml = function (box, html) {
    var parsed = new DOMParser().parseFromString(html, "text/html");
    box.replaceChildren.apply(box, Array.prototype.slice.call(parsed.body.childNodes));
  };
  // Bring parts of this page up to date from the server: fetch the page again and put each
  // fresh element (matched by `selectors`, e.g. "#asset-alarms") in place of the one shown, so
  // live parts read exactly as the server renders them. Calls while one runs are folded into
  // one more run after it. Parsed inertly by DOMParser, never through innerHTML.
  var refreshing = null;
  var refreshAgain = {};
  window.Fleetport.refreshParts = function (selectors) {
    if (refreshing) {
      selectors.forEach(function (s) { refreshAgain[s] = true; });
      return refreshing;
    }
    refreshing = fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        selectors.forEach(function (selector) {
          var shown = document.querySelector(selector), next = fresh.querySelector(selector);
          if (shown && next) { shown.replaceWith(document.importNode(next, true)); }
        });
        document.dispatchEvent(new CustomEvent("fleetport:refreshed", { detail: selectors }));
      })
      .catch(function () { /* the stale indicator tells; the next message tries again */ })
      .then(function () {
        refreshing = null;
        var again = Object.keys(refreshAgain);
        refreshAgain = {};
        if (again.length) { window.Fleetport.refreshParts(again); }
      });
    return refreshing;
  };
  // Kept for pages that call it: a moment to the second, as the server's |when_seconds writes it.
  window.Fleetport.formatTime = function (iso) { return window.Fleetport.format.whenSeconds(iso); };
})();
