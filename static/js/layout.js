/* The shell's layout helpers, on every page (portal/templates/base.html; docs/frontend.md):
 * - a table that scrolls sideways in its .table-wrap can be reached and scrolled with the
 *   keyboard: the wrapper becomes a focusable, named region while (and only while) it scrolls;
 * - the navigation's menus (<details>) close when another opens, on Escape, and on a click
 *   elsewhere. Without this file the menus still open and close by themselves. */
(function () {
  "use strict";

  function regionName(wrap) {
    var table = wrap.querySelector("table");
    var caption = table && table.querySelector("caption");
    if (caption) return caption.textContent.trim();
    var section = wrap.closest("section, .card, main");
    var heading = section && section.querySelector("h1, h2, h3");
    return heading ? heading.textContent.trim() + " (table)" : "Table";
  }

  function markScrolling() {
    var wraps = document.querySelectorAll(".table-wrap");
    for (var i = 0; i < wraps.length; i++) {
      var wrap = wraps[i];
      if (wrap.scrollWidth > wrap.clientWidth + 1) {
        wrap.tabIndex = 0;
        wrap.setAttribute("role", "region");
        if (!wrap.hasAttribute("aria-label")) wrap.setAttribute("aria-label", regionName(wrap));
      } else if (wrap.getAttribute("role") === "region") {
        wrap.removeAttribute("tabindex");
        wrap.removeAttribute("role");
      }
    }
  }

  var pending = false;
  function later() {
    if (pending) return;
    pending = true;
    window.requestAnimationFrame(function () { pending = false; markScrolling(); });
  }

  markScrolling();
  window.addEventListener("resize", later);
  window.addEventListener("load", later);
  if (window.MutationObserver) {  // rows that live updates add or replace
    new MutationObserver(later).observe(document.getElementById("main") || document.body, { childList: true, subtree: true });
  }

  var menus = document.querySelectorAll(".mainnav details");
  function closeMenus(except) {
    for (var i = 0; i < menus.length; i++) {
      if (menus[i] !== except) menus[i].open = false;
    }
  }
  for (var i = 0; i < menus.length; i++) {
    menus[i].addEventListener("toggle", function (event) {
      if (event.target.open) closeMenus(event.target);
    });
  }
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var open = document.querySelector(".mainnav details[open]");
    if (open) {
      open.open = false;
      open.querySelector("summary").focus();
    }
  });
  document.addEventListener("click", function (event) {
    if (!event.target.closest || !event.target.closest(".mainnav details")) closeMenus(null);
  });
})();
