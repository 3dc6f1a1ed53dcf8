// The conversation in a tab (agent_desktop/conversation.py, voice.py): keep keyboard focus on a
// control that the socket or a response replaced with a fresh copy (same id), and show call
// refusals beside the call controls.
(function () {
  "use strict";

  var focusedId = null;

  function remember() {
    var active = document.activeElement;
    focusedId = active && active.id && active !== document.body ? active.id : null;
  }

  function restore() {
    if (!focusedId) return;
    var active = document.activeElement;
    if (active && active !== document.body && document.contains(active)) return;
    var again = document.getElementById(focusedId);
    if (again && !again.disabled) again.focus();
    else {
      // e.g. "End call" is disabled once the call ended: keep focus inside the same panel.
      var panel = again && again.closest("section[id]");
      if (panel) { panel.setAttribute("tabindex", "-1"); panel.focus(); }
    }
  }

  ["htmx:beforeSwap", "htmx:oobBeforeSwap", "htmx:wsBeforeMessage"].forEach(function (name) {
    document.addEventListener(name, remember);
  });
  ["htmx:afterSettle", "htmx:oobAfterSwap", "htmx:wsAfterMessage"].forEach(function (name) {
    document.addEventListener(name, restore);
  });

  // Call controls are plain buttons (no form): their refusals go to the panel's alert line.
  document.addEventListener("htmx:responseError", function (e) {
    var panel = e.detail.elt.closest && e.detail.elt.closest(".voice-panel");
    var target = panel && panel.querySelector(".form-error");
    if (!target) return;
    var detail = "";
    try { detail = JSON.parse(e.detail.xhr.responseText).detail || ""; } catch (err) { detail = ""; }
    target.textContent = detail || "Request failed (" + e.detail.xhr.status + ")";
  });
})();
