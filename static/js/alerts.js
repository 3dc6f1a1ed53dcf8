// Offer alerts and the chat log's manners on the agent desktop: a chime (Web Audio: no sound file
// to fetch), a browser notification when the agent opted in (remembered in localStorage), the
// title flashing while an offer waits; the transcript follows new lines unless the agent scrolled
// up (then a "New messages" pill), and Enter sends a chat reply (Shift+Enter: a new line).
(function () {
  "use strict";
  var SOUND_KEY = "switchboard.desk.sound", NOTIFY_KEY = "switchboard.desk.notify";
  var stats = { chimes: 0, notifications: 0 };
  window.SwitchboardAlerts = stats;

  function stored(key, fallback) {
    try { var v = localStorage.getItem(key); return v === null ? fallback : v === "on"; } catch (e) { return fallback; }
  }
  function store(key, on) { try { localStorage.setItem(key, on ? "on" : "off"); } catch (e) { /* private mode */ } }
  function say(text) { var el = document.getElementById("alert-status"); if (el) el.textContent = text; }

  var audio = null;
  function chime() {
    if (!stored(SOUND_KEY, true)) return;
    stats.chimes += 1;
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    try {
      audio = audio || new Ctx();
      if (audio.state === "suspended") audio.resume();
      [880, 1320].forEach(function (freq, i) {  // two short notes, soft attack and decay
        var t = audio.currentTime + i * 0.16, osc = audio.createOscillator(), gain = audio.createGain();
        osc.frequency.value = freq;
        gain.gain.setValueAtTime(0.0001, t);
        gain.gain.exponentialRampToValueAtTime(0.25, t + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.3);
        osc.connect(gain); gain.connect(audio.destination);
        osc.start(t); osc.stop(t + 0.32);
      });
    } catch (e) { /* no audio device: the title and the notification still tell */ }
  }

  function notify(toast) {
    if (!stored(NOTIFY_KEY, false) || !("Notification" in window) || Notification.permission !== "granted") return;
    var name = toast.querySelector(".customer-name"), origin = toast.querySelector(".offer-origin");
    var channel = toast.querySelector(".channel-badge");
    var title = (origin ? origin.textContent.trim() : "New " + (channel ? channel.textContent.trim().toLowerCase() : "") + " offer");
    var body = (name ? name.textContent.trim() : "") + (toast.querySelector(".offer-note") ? " — " + toast.querySelector(".offer-note").textContent.trim() : "");
    try {
      var n = new Notification(title, { body: body, tag: toast.id, requireInteraction: false });
      stats.notifications += 1;
      n.onclick = function () { window.focus(); var b = toast.querySelector("button.accept"); if (b) b.focus(); n.close(); };
    } catch (e) { /* some browsers allow notifications only from a service worker */ }
  }

  // The title flashes while an offer waits, so a tab in the background shows it.
  var baseTitle = document.title, flashing = null, flip = false;
  function syncTitle() {
    var waiting = document.querySelector("#offers .offer-toast");
    if (waiting && !flashing) {
      flashing = setInterval(function () {
        flip = !flip;
        document.title = flip ? "● New offer · " + baseTitle : baseTitle;
      }, 1000);
      flip = true;
      document.title = "● New offer · " + baseTitle;
    } else if (!waiting && flashing) {
      clearInterval(flashing); flashing = null; document.title = baseTitle;
    }
  }

  var seen = {};
  document.addEventListener("htmx:wsAfterMessage", function () {
    document.querySelectorAll("#offers .offer-toast").forEach(function (toast) {
      if (seen[toast.id]) return;
      seen[toast.id] = true;
      chime();
      notify(toast);
    });
    syncTitle();
  });

  document.addEventListener("change", function (e) {
    if (e.target.id === "alert-sound") {
      store(SOUND_KEY, e.target.checked);
      if (e.target.checked) { chime(); stats.chimes -= 1; }  // a sample (and unlocks audio)
      say(e.target.checked ? "Offers chime." : "No chime.");
    } else if (e.target.id === "alert-notify") {
      var box = e.target;
      if (!box.checked) { store(NOTIFY_KEY, false); say("No browser notifications."); return; }
      if (!("Notification" in window)) { box.checked = false; say("This browser has no notifications."); return; }
      Notification.requestPermission().then(function (answer) {
        var ok = answer === "granted";
        box.checked = ok;
        store(NOTIFY_KEY, ok);
        say(ok ? "Offers show a browser notification." : "The browser refused notifications (see its site settings).");
      });
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var sound = document.getElementById("alert-sound"), bell = document.getElementById("alert-notify");
    if (sound) sound.checked = stored(SOUND_KEY, true);
    if (bell) bell.checked = stored(NOTIFY_KEY, false) && "Notification" in window && Notification.permission === "granted";
    document.querySelectorAll("#offers .offer-toast").forEach(function (t) { seen[t.id] = true; });
    syncTitle();
    document.querySelectorAll(".desk-chat-log").forEach(toBottom);
  });

  // ---- chat log: follow new lines unless the agent scrolled up to read
  function atBottom(log) { return log.scrollHeight - log.scrollTop - log.clientHeight < 24; }
  function toBottom(log) { log.scrollTop = log.scrollHeight; log.dataset.pinned = "true"; pill(log, false); }
  function pill(log, show) {
    var chat = log.closest(".desk-chat");
    if (!chat) return;
    var button = chat.querySelector(".new-messages");
    if (!button && show) {
      button = document.createElement("button");
      button.type = "button";
      button.className = "new-messages";
      button.textContent = "New messages ↓";
      button.addEventListener("click", function () { toBottom(log); var box = chat.querySelector(".desk-chat-reply textarea"); if (box) box.focus(); });
      log.insertAdjacentElement("afterend", button);
    }
    if (button) button.hidden = !show;
  }
  document.addEventListener("scroll", function (e) {
    var log = e.target;
    if (!log.classList || !log.classList.contains("desk-chat-log")) return;
    log.dataset.pinned = atBottom(log) ? "true" : "false";
    if (log.dataset.pinned === "true") pill(log, false);
  }, true);
  document.addEventListener("desk:chatline", function (e) {
    var log = e.detail.log;
    if (log.dataset.pinned === "false") pill(log, true);
    else toBottom(log);
  });
  // A panel shown (tab opened or switched): its transcript starts at the latest line.
  document.addEventListener("desk:panelshown", function (e) {
    var log = e.detail.panel.querySelector(".desk-chat-log");
    if (log && log.dataset.pinned !== "false") toBottom(log);
  });

  // ---- Enter sends a chat reply; Shift+Enter is a new line (IME composition is left alone)
  document.addEventListener("keydown", function (e) {
    if (e.key !== "Enter" || e.shiftKey || e.ctrlKey || e.altKey || e.metaKey || e.isComposing) return;
    var box = e.target;
    if (!box.matches || !box.matches(".desk-chat-reply textarea")) return;
    e.preventDefault();
    if (box.value.trim()) box.form.requestSubmit();
  });
})();
