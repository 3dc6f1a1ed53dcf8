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
  function syncTabs(preferNewest) {
    var tabs = Array.prototype.slice.call(document.querySelectorAll("#work-tabs [role=tab]"));
    var ids = tabs.map(function (t) { return t.id; });
    if (preferNewest && tabs.length) selectedTab = tabs[tabs.length - 1].id;
    if (ids.indexOf(selectedTab) < 0) selectedTab = ids.length ? ids[0] : null;
    tabs.forEach(function (tab) {
      var on = tab.id === selectedTab;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
      var panel = document.getElementById(tab.getAttribute("aria-controls"));
      if (panel) panel.hidden = !on;
    });
  }

  function selectTab(tab) {
    selectedTab = tab.id;
    syncTabs(false);
    tab.focus();
  }

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  document.addEventListener("keydown", function (e) {
    if (e.target && e.target.getAttribute && e.target.getAttribute("role") === "tab") {
      var tabs = Array.prototype.slice.call(document.querySelectorAll("#work-tabs [role=tab]"));
      var i = tabs.indexOf(e.target);
      if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
        var next = tabs[(i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
        if (next) { selectTab(next); e.preventDefault(); }
        return;
      }
    }
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    var key = e.key.toLowerCase();
    if (key !== "a" && key !== "r") return;
    var button = document.querySelector("#offers .offer-toast " + (key === "a" ? "button.accept" : "button.reject"));
    if (button && !button.disabled) { e.preventDefault(); button.click(); }
  });

  document.addEventListener("click", function (e) {
    var tab = e.target.closest && e.target.closest("#work-tabs [role=tab]");
    if (tab) selectTab(tab);
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
    syncTabs(addedWork);
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
  document.addEventListener("DOMContentLoaded", function () { tick(); syncTabs(false); });
})();
