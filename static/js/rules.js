// The rules editor (console/rules_*.py): a condition's input is marked invalid while its check
// shows a problem, and a dry-run's or preview's answer takes the focus when it arrives, so a
// keyboard user lands on it. Delegated listeners only: the fragments come and go with htmx.
(function () {
  "use strict";

  document.addEventListener("htmx:afterSettle", function (event) {
    var config = event.detail.requestConfig || {};
    var elt = config.elt; // the element that sent the request (detail.elt is the swapped-in one)
    var path = config.path || "";
    if (path === "/supervisor/rules/check" && elt && elt.id) {
      var check = document.getElementById(elt.id + "-check");
      var bad = check && check.querySelector(".error");
      if (bad) elt.setAttribute("aria-invalid", "true");
      else elt.removeAttribute("aria-invalid");
      return;
    }
    var answer = null;
    if (/\/dry-run$/.test(path)) answer = document.getElementById("dry-run-result");
    else if (/\/(preview|reevaluate)$/.test(path)) answer = document.getElementById("rules-preview");
    if (answer) answer.focus();
  });
})();
