// Work around an interaction (agent_desktop/work.py): the after-contact-work clock, the Complete
// button that waits for a wrap-up code, canned-response insertion, the EX pulse "Skip", and
// inline errors. Delegated listeners only: panels arrive and leave over the websocket.
(function () {
  "use strict";

  function clock(seconds) {
    seconds = Math.floor(Math.abs(seconds));
    var m = Math.floor(seconds / 60), s = seconds % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }

  // Counts down to the queue's wrap-up budget, then shows how far over it is (no hard stop: the
  // budget is a guide, and cutting an agent off mid-note would lose work).
  function tickAcw() {
    var now = Date.now();
    document.querySelectorAll("[data-acw-until]").forEach(function (el) {
      var left = (Date.parse(el.dataset.acwUntil) - now) / 1000;
      el.textContent = left >= 0 ? clock(left) + " left" : "over by " + clock(left);
      el.classList.toggle("overdue", left < 0);
      el.classList.toggle("urgent", left >= 0 && left <= 10);
    });
  }

  function syncComplete(select) {
    var form = select.closest("form");
    var button = form && form.querySelector(".complete-button");
    if (button) button.disabled = !select.value;
  }

  document.addEventListener("change", function (e) {
    if (e.target.matches && e.target.matches(".wrapup-form select[name=disposition]")) syncComplete(e.target);
  });

  function insertAtCursor(field, text) {
    var start = field.selectionStart == null ? field.value.length : field.selectionStart;
    var end = field.selectionEnd == null ? field.value.length : field.selectionEnd;
    var before = field.value.slice(0, start), after = field.value.slice(end);
    var spacer = before && !/\s$/.test(before) ? " " : "";
    field.value = before + spacer + text + after;
    var caret = (before + spacer + text).length;
    field.setSelectionRange(caret, caret);
    field.dispatchEvent(new Event("input", { bubbles: true }));
    field.focus();
  }

  document.addEventListener("click", function (e) {
    // Wrapping up: the code is next. Withdrawing a transfer: End / Wrap up again.
    var end = e.target.closest && e.target.closest(".end-button, .consult-pending button");
    if (end) {
      var iid = end.closest(".wrapup-bar").id.replace("wrapup-", "");
      desk().expectFocus(end.matches(".end-button") ? "#disposition-" + iid : "#wrapup-" + iid + " .end-button");
    }
    var insert = e.target.closest && e.target.closest(".canned-insert");
    if (insert) {
      var section = insert.closest(".canned");
      var status = section && section.querySelector(".canned-status");
      // The first reply box present wins: "reply-<id>" (the agreed id), then the chat desk's own.
      var reply = null;
      insert.dataset.replyTargets.split(" ").some(function (id) { reply = document.getElementById(id); return reply; });
      if (reply) {
        insertAtCursor(reply, insert.dataset.text);
        if (status) status.textContent = "Inserted into the reply.";
      } else {
        if (navigator.clipboard) navigator.clipboard.writeText(insert.dataset.text).catch(function () {});
        if (status) status.textContent = "No reply box on this interaction; copied to the clipboard.";
      }
      return;
    }
    var skip = e.target.closest && e.target.closest(".pulse-skip");
    if (skip) {
      var card = skip.closest(".ex-pulse");
      if (card) card.remove();
      if (!desk().focusNext()) focusPulse();
    }
  });

  function formError(elt) {
    var form = elt && elt.closest && elt.closest("form");
    return form && form.querySelector(".form-error");
  }

  // Refusals (422 naming the field, 409 from the engine) are shown beside the form that caused them.
  document.addEventListener("htmx:responseError", function (e) {
    var target = formError(e.detail.elt);
    if (!target) return;
    var detail = "";
    try { detail = JSON.parse(e.detail.xhr.responseText).detail || ""; } catch (err) { detail = ""; }
    target.textContent = detail || "Request failed (" + e.detail.xhr.status + ")";
  });
  document.addEventListener("htmx:beforeRequest", function (e) {
    var target = formError(e.detail.elt);
    if (target) target.textContent = "";
  });

  var desk = function () { return window.SwitchboardDesk; };

  // Focus follows the work: after each action it goes where the next one is.
  document.addEventListener("htmx:afterRequest", function (e) {
    var elt = e.detail.elt;
    if (!e.detail.successful || !elt.matches) return;
    if (elt.matches(".transfer-form")) {
      // A transfer removes the tab here (the engine tells only the receiving side): the next one.
      desk().focusNext();
    } else if (elt.matches(".wrapup-form")) {
      // Completed: the tab and panel go now (the socket's push deletes them for good; when it
      // came first, this form is already detached and this event never reaches here).
      var panel = elt.closest(".interaction-panel");
      var tab = panel && document.getElementById(panel.getAttribute("aria-labelledby"));
      if (tab) tab.hidden = true;
      if (panel) panel.hidden = true;
      settleCompletion();
    }
  });

  // After Complete: the next interaction's reply box, or the pulse card when there is no other work.
  var completing = null;
  document.addEventListener("htmx:beforeRequest", function (e) {
    if (e.detail.elt.matches && e.detail.elt.matches(".wrapup-form")) {
      completing = e.detail.elt.closest(".interaction-panel").id.replace("panel-", "");
    }
  });
  function settleCompletion() {
    if (!completing || !document.getElementById("pulse-" + completing)) return;
    completing = null;
    if (!desk().focusNext()) focusPulse();
  }
  ["htmx:oobAfterSwap", "htmx:wsAfterMessage"].forEach(function (name) {
    document.addEventListener(name, function () { setTimeout(settleCompletion, 0); });
  });

  function focusPulse() {
    var pulse = document.querySelector("#pulse-slot .ex-pulse");
    if (pulse) { pulse.setAttribute("tabindex", "-1"); pulse.focus(); }
    else { var list = document.getElementById("work-list"); if (list) { list.setAttribute("tabindex", "-1"); list.focus(); } }
  }

  document.addEventListener("htmx:afterSettle", function (e) {
    var elt = e.target;  // the swapped-in element (detail.elt is the one that asked)
    if (!elt || !elt.matches) return;
    if (elt.matches(".desk-chat-reply")) {
      // Sent (the form came back empty): keep typing.
      var box = elt.querySelector("textarea");
      if (box) box.focus();
    } else if (elt.matches(".email-reply")) {
      var end = elt.closest(".interaction-panel").querySelector(".end-button");
      if (end) end.focus();
    } else if (elt.matches(".ex-pulse.done")) {
      // "Thanks" is read out (role=status), then leaves: banners must not pile up.
      setTimeout(function () {
        if (!document.contains(elt)) return;
        var had = elt.contains(document.activeElement);
        elt.remove();
        if (had && !desk().focusNext()) focusPulse();
      }, 6000);
    }
  });

  document.addEventListener("htmx:afterSettle", tickAcw);
  setInterval(tickAcw, 1000);
  document.addEventListener("DOMContentLoaded", tickAcw);
})();
