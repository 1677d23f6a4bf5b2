/* Confirmations: a form with data-confirm="…" asks first, in a native <dialog>, before it is
   submitted. Confirm submits the form as it would have been (with the button that submitted
   it); Cancel, Escape or a click outside submits nothing. No inline script (CSP): pages load
   this file and mark their forms. */
(function () {
  "use strict";
  var dialog = null;
  var pending = null; // {form, submitter} waiting for an answer

  function build() {
    dialog = document.createElement("dialog");
    dialog.className = "confirm-dialog";
    dialog.setAttribute("data-testid", "confirm-dialog");
    dialog.setAttribute("aria-labelledby", "confirm-dialog-message");
    var message = document.createElement("p");
    message.id = "confirm-dialog-message";
    var form = document.createElement("form");
    form.method = "dialog";
    form.className = "inline-form";
    var ok = document.createElement("button");
    ok.type = "submit";
    ok.value = "confirm";
    ok.className = "button button-primary";
    ok.textContent = "Confirm";
    ok.setAttribute("data-testid", "confirm-ok");
    var cancel = document.createElement("button");
    cancel.type = "submit";
    cancel.value = "cancel";
    cancel.className = "button";
    cancel.textContent = "Cancel";
    cancel.setAttribute("data-testid", "confirm-cancel");
    form.appendChild(ok);
    form.appendChild(cancel);
    dialog.appendChild(message);
    dialog.appendChild(form);
    document.body.appendChild(dialog);
    dialog.addEventListener("close", function () {
      var waiting = pending;
      pending = null;
      if (!waiting || dialog.returnValue !== "confirm") { return; }
      waiting.form.setAttribute("data-confirmed", "1");
      if (waiting.form.requestSubmit) {
        waiting.form.requestSubmit(waiting.submitter || undefined);
      } else {
        waiting.form.submit();
      }
    });
    // A click on the backdrop (outside the box) is a Cancel.
    dialog.addEventListener("click", function (event) {
      if (event.target === dialog) { dialog.close("cancel"); }
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-confirm")) { return; }
    if (form.getAttribute("data-confirmed") === "1") {
      form.removeAttribute("data-confirmed"); // asked once for this submission
      return;
    }
    event.preventDefault();
    if (typeof HTMLDialogElement !== "function") {
      // No <dialog> (very old browsers): the plain confirm box says the same.
      if (window.confirm(form.getAttribute("data-confirm"))) {
        form.setAttribute("data-confirmed", "1");
        form.submit();
      }
      return;
    }
    if (!dialog) { build(); }
    pending = { form: form, submitter: event.submitter || null };
    dialog.returnValue = "";
    dialog.querySelector("p").textContent = form.getAttribute("data-confirm");
    dialog.showModal();
    dialog.querySelector("[data-testid=confirm-cancel]").focus();
  }, true);
})();
