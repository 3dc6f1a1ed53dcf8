// Agent desktop behaviour, kept small: clocks, heartbeats, tabs, keyboard shortcuts, notices.
// Everything the server decides arrives as HTML over the htmx websocket; this file only ticks.
(function () {
  "use strict";
  var PING_MS = 10000;
  var NOTICE_MS = 6000;
  var socket = null;
  var selectedTab = null;

  function fmt(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    if (h) return h + "h " + m + "m";
    if (m) return m + "m " + (s < 10 ? "0" : "") + s + "s";
    return s + "s";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-since]").forEach(function (el) {
      el.textContent = fmt((now - Date.parse(el.dataset.since)) / 1000);
    });
    document.querySelectorAll("[data-expires-at]").forEach(function (el) {
      var left = (Date.parse(el.dataset.expiresAt) - now) / 1000;
      el.textContent = fmt(left);
      el.classList.toggle("urgent", left <= 5);
    });
  }

  // Tabs: one selected at a time; a newly arrived interaction is selected so the agent sees it.
  // A tab hidden by work.js (completed, waiting for the socket to remove it) no longer counts.
  function visibleTabs() {
    return Array.prototype.slice.call(document.querySelectorAll("#work-tabs [role=tab]:not([hidden])"));
  }

  function syncTabs(preferNewest) {
    var tabs = visibleTabs();
    var ids = tabs.map(function (t) { return t.id; });
    if (preferNewest && tabs.length) selectedTab = tabs[tabs.length - 1].id;
    if (ids.indexOf(selectedTab) < 0) selectedTab = ids.length ? ids[0] : null;
    document.querySelectorAll("#work-tabs [role=tab]").forEach(function (tab) {
      var on = tab.id === selectedTab;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
      var panel = document.getElementById(tab.getAttribute("aria-controls"));
      if (panel) {
        var shown = on && panel.hidden;
        panel.hidden = !on;
        if (shown) document.dispatchEvent(new CustomEvent("desk:panelshown", { detail: { panel: panel } }));
      }
      if (on && !document.hidden) unread[tab.id] = 0;
    });
    renderBadges();
  }

  // Customer messages that arrived while their tab was not in view (or the window was hidden).
  var unread = {};
  function renderBadges() {
    document.querySelectorAll("#work-tabs [role=tab]").forEach(function (tab) {
      var badge = tab.querySelector(".unread-badge");
      if (!badge) return;
      var n = unread[tab.id] || 0;
      badge.hidden = n === 0;
      badge.textContent = n ? String(n) : "";
      badge.setAttribute("aria-label", n + " unread");
    });
  }
  function countUnread(line) {
    var panel = line.closest(".interaction-panel");
    if (!panel || (!panel.hidden && !document.hidden)) return;
    var tabId = panel.getAttribute("aria-labelledby");
    unread[tabId] = (unread[tabId] || 0) + 1;
    renderBadges();
  }
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && selectedTab) { unread[selectedTab] = 0; renderBadges(); }
  });
  // Only lines appended to a transcript count: a whole panel (page load, resync) brings old ones.
  new MutationObserver(function (records) {
    records.forEach(function (record) {
      if (!record.target.classList || !record.target.classList.contains("desk-chat-log")) return;
      record.addedNodes.forEach(function (node) {
        if (node.nodeType !== 1) return;
        // A line the panel already brought (it was written while the tab opened) comes once.
        if (node.id && record.target.querySelectorAll("[id='" + node.id + "']").length > 1) { node.remove(); return; }
        if (node.classList.contains("from-customer")) countUnread(node);
        document.dispatchEvent(new CustomEvent("desk:chatline", { detail: { line: node, log: record.target } }));
      });
    });
  }).observe(document.documentElement, { childList: true, subtree: true });

  function selectedPanel() {
    var tab = selectedTab && document.getElementById(selectedTab);
    return tab ? document.getElementById(tab.getAttribute("aria-controls")) : null;
  }

  // Where the next action is in a panel: the wrap-up code in wrap-up, else the reply box (chat,
  // email), else the call's hold button, else End / Wrap up.
  function primaryControl(panel) {
    if (!panel) return null;
    var picks = [".wrapup-form select", ".desk-chat-reply textarea", ".email-reply textarea",
      ".voice-panel .call-hold:not([disabled])", ".end-button"];
    for (var i = 0; i < picks.length; i++) {
      var el = panel.querySelector(picks[i]);
      if (el && !el.disabled) return el;
    }
    return null;
  }

  var pendingFocus = null;  // a panel id whose primary control should take focus once it exists
  function focusPanel(panel, wait) {
    if (!panel) return;
    var control = primaryControl(panel);
    // A call's panel loads its controls: wait for them rather than settle on a lesser control.
    var loading = panel.querySelector(".voice-panel[aria-busy]");
    if (control && !(wait && loading)) { control.focus(); pendingFocus = null; }
    else pendingFocus = panel.id;
  }
  // A control an action brings (the wrap-up code after End / Wrap up) may arrive by the response
  // or by the socket, in either order: focus it whenever it is there, once.
  var awaited = null;
  function expectFocus(selector) { awaited = { selector: selector, until: Date.now() + 15000 }; retryFocus(); }
  function retryFocus() {
    if (awaited) {
      var el = Date.now() < awaited.until ? document.querySelector(awaited.selector) : null;
      if (el && !el.disabled) { el.focus(); awaited = null; return; }
      if (Date.now() >= awaited.until) awaited = null;
    }
    if (pendingFocus) focusPanel(document.getElementById(pendingFocus), false);
  }
  window.SwitchboardDesk = {
    syncTabs: syncTabs,
    focusPanel: focusPanel,
    expectFocus: expectFocus,
    selectedPanel: selectedPanel,
    focusNext: function () { syncTabs(false); var panel = selectedPanel(); if (panel) focusPanel(panel, true); return panel; }
  };

  // An offer's toast goes once its interaction is open in a tab (accepted), by interaction id,
  // whatever the socket that brought the toast or the tab saw: after a reconnect, a fail-over's
  // re-offer or a late frame, the server's own removal may name another offer or none.
  function dropHeldOffers() {
    document.querySelectorAll("#offers .offer-toast[data-interaction-id]").forEach(function (toast) {
      if (document.getElementById("tab-" + toast.dataset.interactionId)) toast.remove();
    });
  }

  function selectTab(tab, focusWork) {
    selectedTab = tab.id;
    syncTabs(false);
    if (focusWork) focusPanel(selectedPanel(), true);
    else tab.focus();
  }

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  function openHelp() {
    var dialog = document.getElementById("shortcuts-dialog");
    if (dialog && !dialog.open) dialog.showModal();
  }

  var accepting = false;  // this page asked for an offer: its tab opens with the reply box focused

  document.addEventListener("keydown", function (e) {
    if (e.target && e.target.getAttribute && e.target.getAttribute("role") === "tab") {
      var tabs = visibleTabs();
      var i = tabs.indexOf(e.target);
      var step = { ArrowDown: 1, ArrowRight: 1, ArrowUp: tabs.length - 1, ArrowLeft: tabs.length - 1 }[e.key];
      if (step) {
        var next = tabs[(i + step) % tabs.length];
        if (next) { selectTab(next, false); e.preventDefault(); }
        return;
      }
      if (e.key === "Enter" || e.key === " ") { selectTab(e.target, true); e.preventDefault(); return; }
    }
    if (document.querySelector("dialog[open]")) return;
    // Esc leaves a text box in a panel for the panel itself, where the letter shortcuts work.
    if (e.key === "Escape" && typing(e.target)) {
      var inPanel = e.target.closest(".interaction-panel");
      if (inPanel) { inPanel.focus(); e.preventDefault(); }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    if (e.key === "?") { e.preventDefault(); openHelp(); return; }
    var key = e.key.toLowerCase();
    var act = null;
    if (key === "a" || key === "r") {
      act = document.querySelector("#offers .offer-toast " + (key === "a" ? "button.accept" : "button.reject"));
    } else if (key === "w") {
      act = selectedPanel() && selectedPanel().querySelector(".end-button");
    } else if (key === "/") {
      var control = primaryControl(selectedPanel());
      if (control) { e.preventDefault(); control.focus(); }
      return;
    } else if (key === "s") {
      e.preventDefault();
      document.getElementById("presence-select").focus();
      return;
    } else if (/^[1-9]$/.test(key)) {
      var tab = visibleTabs()[Number(key) - 1];
      if (tab) { e.preventDefault(); selectTab(tab, true); }
      return;
    }
    if (act && !act.disabled) { e.preventDefault(); act.click(); }
  });

  document.addEventListener("click", function (e) {
    var tab = e.target.closest && e.target.closest("#work-tabs [role=tab]");
    if (tab) selectTab(tab, false);
    if (e.target.closest && e.target.closest("#offers .offer-toast button.accept")) accepting = true;
    if (e.target.closest && e.target.closest(".help-button")) openHelp();
  });

  function showNotice(text) {
    var notice = document.getElementById("offer-notice");
    if (!notice) return;
    notice.textContent = text;
    var shown = notice.textContent;
    setTimeout(function () { if (notice.textContent === shown) notice.textContent = ""; }, NOTICE_MS);
  }

  document.addEventListener("htmx:wsOpen", function (e) {
    socket = e.detail.socketWrapper;
  });
  document.addEventListener("htmx:wsClose", function (e) {
    var status = document.getElementById("ws-status");
    var code = e.detail.event.code;
    if (code === 4401) { window.location.assign("/login"); return; }
    if (status) {
      status.classList.remove("live");
      status.textContent = code === 4403 ? "Not allowed: " + e.detail.event.reason : "Disconnected, reconnecting…";
    }
  });
  document.addEventListener("htmx:wsAfterMessage", function (e) {
    var addedWork = e.detail.message.indexOf('beforeend:#work-tabs') >= 0;
    dropHeldOffers();
    var lost = !document.activeElement || document.activeElement === document.body;
    syncTabs(addedWork);
    // Accepted here (or focus was lost with the offer): the new tab opens at its reply box.
    if (addedWork && (accepting || lost)) { accepting = false; focusPanel(selectedPanel(), true); }
    else retryFocus();
    // An offer arrived while the agent was not in the middle of something: Accept is next.
    var accept = document.querySelector("#offers .offer-toast button.accept");
    var active = document.activeElement;
    if (accept && e.detail.message.indexOf('beforeend:#offers') >= 0 &&
        (!active || active === document.body || active.closest("#desktop-status"))) accept.focus();
    tick();
    var notice = document.getElementById("offer-notice");
    if (notice && notice.textContent.trim()) showNotice(notice.textContent.trim());
  });
  // A refused accept/reject (409: expired or taken) is explained, not silently dropped.
  document.addEventListener("htmx:responseError", function (e) {
    var xhr = e.detail.xhr, detail = "";
    try { detail = JSON.parse(xhr.responseText).detail || ""; } catch (err) { detail = ""; }
    showNotice(detail || "Request failed (" + xhr.status + ")");
  });

  setInterval(function () {
    if (socket) socket.send(JSON.stringify({ type: "ping" }));
  }, PING_MS);
  setInterval(tick, 1000);
  document.addEventListener("htmx:afterSettle", retryFocus);
  document.addEventListener("htmx:oobAfterSwap", retryFocus);
  document.addEventListener("DOMContentLoaded", function () { dropHeldOffers(); tick(); syncTabs(false); });
})();
