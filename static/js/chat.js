// Customer web chat: start over HTTP, then one websocket carrying small JSON messages.
// Everything the server sends is shown with textContent, never as HTML.
(function () {
  "use strict";
  var STORE = "sb-chat";
  var PING_MS = 20000;
  var TYPING_MS = 2000;
  var body = document.body;
  var socket = null;
  var chatState = null; // {interaction_id, token}
  var ended = false;
  var finished = false; // rated (or nothing left to do): do not reconnect
  var lastTypingSent = 0;
  var typingTimer = null;
  var reconnectDelay = 1000;

  function $(id) { return document.getElementById(id); }
  function senior() { return body.classList.contains("senior"); }
  function words(standard, plain) { return senior() ? plain : standard; }

  function show(el, on) { el.hidden = !on; }
  function fieldError(id, text) {
    var el = $(id);
    if (!el) return;
    el.textContent = text || "";
    show(el, !!text);
  }

  // ---------------------------------------------------------------- senior mode
  $("senior-toggle").addEventListener("click", function () {
    var on = !senior();
    body.classList.toggle("senior", on);
    this.setAttribute("aria-pressed", on ? "true" : "false");
    var url = new URL(window.location.href);
    if (on) url.searchParams.set("senior", "1"); else url.searchParams.delete("senior");
    window.history.replaceState(null, "", url.toString());
  });

  // ---------------------------------------------------------------- start
  function appToken() {
    // The bank's app passes its signed token in the fragment, which browsers never send to servers.
    var match = /(?:^|&)app_token=([^&]+)/.exec(window.location.hash.slice(1));
    return match ? decodeURIComponent(match[1]) : null;
  }

  $("start-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var submitter = e.submitter || document.activeElement;
    var talk = senior() || (submitter && submitter.dataset && submitter.dataset.talk === "1");
    var topicRadio = document.querySelector("input[name=topic]:checked");
    var topic = senior() ? (topicRadio ? topicRadio.value : "other") : $("chat-topic").value;
    var payload = {
      name: $("chat-name").value.trim() || null,
      contact: $("chat-contact").value.trim() || null,
      topic: topic,
      senior: senior(),
      talk_to_person: !!talk,
    };
    var token = appToken();
    if (token) payload.app_token = token;
    fieldError("chat-contact-error", "");
    fieldError("chat-name-error", "");
    fieldError("start-error", "");
    fetch("/chat/start", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(payload),
    }).then(function (response) {
      return response.json().then(function (data) { return { ok: response.ok, data: data }; });
    }).then(function (result) {
      if (!result.ok) { showProblem(result.data); return; }
      chatState = { interaction_id: result.data.interaction_id, token: result.data.token };
      sessionStorage.setItem(STORE, JSON.stringify(chatState));
      // Prefill the transcript address with the email they gave us (never one from their profile:
      // an anonymous page must not reveal what the bank knows about a typed phone number).
      if (payload.contact && payload.contact.indexOf("@") > 0 && !$("transcript-email").value) {
        $("transcript-email").value = payload.contact;
        $("leave-email").value = payload.contact;
      } else if (payload.contact) {
        $("callback-phone").value = payload.contact;
      }
      // A name only for a customer signed in through the bank's app: a typed phone number or
      // email proves nothing, so it is never answered with whose it is (interactions.chat_verify).
      var greeting = result.data.returning
        ? words("Welcome back, " + result.data.customer_name + ".", "Hello again, " + result.data.customer_name + ".")
        : words("Thanks — we are finding an adviser for you.", "Thank you. We are finding a person for you.");
      show($("verify"), !!result.data.can_verify);
      systemLine(greeting);
      openLive();
    }).catch(function () {
      fieldError("start-error", words("We could not start the chat. Please try again.", "Something went wrong. Please try again."));
    });
  });

  // ---------------------------------------------------------------- proving who you are
  function verifyCall(path, payload) {
    return fetch("/chat/" + chatState.interaction_id + path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-Chat-Token": chatState.token },
      body: JSON.stringify(payload || {}),
    }).then(function (response) {
      return response.json().then(function (data) { return { ok: response.ok, data: data }; });
    });
  }
  $("verify-send").addEventListener("click", function () {
    verifyCall("/verify/send").then(function (result) {
      $("verify-note").textContent = result.ok
        ? words("If that phone or email is registered with us, a code is on its way.", "If we know your phone or email, we have sent a number.")
        : (result.data.detail || "We could not send a code.");
      if (result.ok) $("verify-code").focus();
    });
  });
  $("verify-form").addEventListener("submit", function (event) {
    event.preventDefault();
    verifyCall("/verify", { code: $("verify-code").value }).then(function (result) {
      if (result.ok) {
        $("verify-note").textContent = "";
        show($("verify"), false);
        systemLine(words("Thank you, " + result.data.customer_name + ". You are verified.", "Thank you. We know it is you now."));
      } else {
        $("verify-note").textContent = result.data.detail || "That code did not work.";
      }
    });
  });

  function showProblem(problem) {
    var errors = (problem && problem.errors) || [];
    var shown = false;
    errors.forEach(function (err) {
      var field = String(err.field || "").replace(/^body\./, "");
      var target = { name: "chat-name-error", contact: "chat-contact-error", app_token: "start-error" }[field];
      if (target) { fieldError(target, err.message); shown = true; }
    });
    if (!shown) fieldError("start-error", (problem && problem.detail) || "Please check the form.");
    var contactError = $("chat-contact-error");
    if (!contactError.hidden) $("chat-contact").focus();
  }

  function openLive() {
    show($("chat-start"), false);
    show($("chat-live"), true);
    $("message-body").focus();
    connect();
  }

  // ---------------------------------------------------------------- socket
  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + "/chat/ws");
    socket.addEventListener("open", function () {
      reconnectDelay = 1000;
      socket.send(JSON.stringify({ type: "auth", interaction_id: chatState.interaction_id, token: chatState.token }));
    });
    socket.addEventListener("message", function (e) {
      var msg;
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      handle(msg);
    });
    socket.addEventListener("close", function (e) {
      socket = null;
      if (e.code === 4403) { // not (or no longer) this browser's chat: start afresh
        sessionStorage.removeItem(STORE);
        setStatus(words("This chat is no longer available.", "This chat has closed."));
        return;
      }
      if (!finished) {
        window.setTimeout(connect, reconnectDelay);
        reconnectDelay = Math.min(reconnectDelay * 2, 15000);
      }
    });
  }

  function sendAction(action) {
    if (socket && socket.readyState === WebSocket.OPEN) { socket.send(JSON.stringify(action)); return true; }
    return false;
  }

  window.setInterval(function () { sendAction({ type: "ping" }); }, PING_MS);

  function setStatus(text) { $("chat-status").textContent = text; }

  function minutes(seconds) {
    var m = Math.max(1, Math.round(seconds / 60));
    return m === 1 ? "1 minute" : m + " minutes";
  }

  function handle(msg) {
    if (msg.type === "history") {
      $("chat-log").querySelectorAll("li[data-id]").forEach(function (li) { li.remove(); });
      msg.messages.forEach(addMessage);
    } else if (msg.type === "message") {
      addMessage(msg);
      if (msg.sender === "agent") show($("agent-typing"), false);
    } else if (msg.type === "status") {
      showStatus(msg);
    } else if (msg.type === "typing") {
      show($("agent-typing"), true);
      window.clearTimeout(typingTimer);
      typingTimer = window.setTimeout(function () { show($("agent-typing"), false); }, 4000);
    } else if (msg.type === "ended") {
      endChat(msg.by, !!msg.answered);
    } else if (msg.type === "transcript_requested") {
      $("transcript-note").textContent = words("We will email the transcript to " + msg.email + ".", "We will send a copy to " + msg.email + ".");
    } else if (msg.type === "error") {
      var target = msg.field === "email" ? "transcript-note" : "message-error";
      if (target === "transcript-note") $("transcript-note").textContent = msg.detail;
      else fieldError("message-error", msg.detail);
    }
  }

  var joinedShown = false;
  function showStatus(s) {
    // A long wait, or nobody online: offer a callback or a message instead of waiting here.
    var offer = !!s.alternatives && !s.agent_joined && !ended;
    show($("wait-options"), offer);
    show($("wait-reason-nobody"), !!s.nobody_online);
    show($("wait-reason-long"), !s.nobody_online);
    if (s.agent_joined) {
      setStatus(words("An adviser has joined the chat.", "A person is here to help you."));
      if (!joinedShown) { joinedShown = true; systemLine(words("Agent joined", "A person has joined")); }
    } else if (s.position && s.nobody_online) {
      setStatus(words(
        "You are number " + s.position + " in line. No adviser is online right now.",
        "You are number " + s.position + " in the queue. Nobody is free right now."
      ));
    } else if (s.position) {
      setStatus(words(
        "You are number " + s.position + " in line. Estimated wait: about " + minutes(s.eta_seconds) + ".",
        "You are number " + s.position + " in the queue. Please wait about " + minutes(s.eta_seconds) + "."
      ));
    } else if (s.state === "created" || s.state === "queued" || s.state === "offered") {
      setStatus(words("Finding an adviser…", "Finding a person for you…"));
    }
  }

  function addMessage(m) {
    if (document.querySelector('#chat-log li[data-id="' + m.id + '"]')) return;
    var li = document.createElement("li");
    li.dataset.id = m.id;
    li.className = "line from-" + m.sender;
    var who = document.createElement("span");
    who.className = "who";
    who.textContent = m.sender === "customer" ? "You" : (m.sender === "agent" ? words("Adviser", "Bank") : "Bank");
    var text = document.createElement("span");
    text.className = "text";
    text.textContent = m.body;
    li.appendChild(who);
    li.appendChild(text);
    $("chat-log").appendChild(li);
    li.scrollIntoView({ block: "end" });
  }

  function systemLine(text) {
    var li = document.createElement("li");
    li.className = "line system";
    li.textContent = text;
    $("chat-log").appendChild(li);
  }

  // ---------------------------------------------------------------- composing
  $("message-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var text = $("message-body").value;
    if (!text.trim()) { fieldError("message-error", words("Type a message first.", "Please write something first.")); return; }
    fieldError("message-error", "");
    if (sendAction({ type: "message", body: text })) $("message-body").value = "";
    else fieldError("message-error", words("Reconnecting… please try again in a moment.", "Please wait a moment and try again."));
  });

  $("message-body").addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("message-form").requestSubmit(); }
  });

  $("message-body").addEventListener("input", function () {
    var now = Date.now();
    if (now - lastTypingSent > TYPING_MS) { lastTypingSent = now; sendAction({ type: "typing" }); }
  });

  $("transcript-form").addEventListener("submit", function (e) {
    e.preventDefault();
    sendAction({ type: "transcript", email: $("transcript-email").value });
  });

  $("end-button").addEventListener("click", function () {
    sendAction({ type: "end" });
    endChat("customer", joinedShown);
  });

  // ---------------------------------------------------------------- instead of waiting
  var WAIT_FIELDS = {
    phone: "callback-phone-error", "body.phone": "callback-phone-error",
    "body.email": "leave-email-error", "body.message": "leave-message-error", "body.name": "leave-email-error",
  };
  function waitCall(path, payload, errors) {
    errors.forEach(function (id) { fieldError(id, ""); });
    fieldError("wait-options-error", "");
    return fetch("/chat/" + encodeURIComponent(chatState.interaction_id) + path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-Chat-Token": chatState.token },
      body: JSON.stringify(payload),
    }).then(function (response) {
      return response.json().then(function (data) { return { ok: response.ok, data: data }; });
    }).then(function (result) {
      if (result.ok) return result.data;
      var shown = null;
      ((result.data && result.data.errors) || []).forEach(function (err) {
        var target = WAIT_FIELDS[err.field];
        if (target) { fieldError(target, err.message); shown = shown || target; }
      });
      if (shown) {
        var input = $(shown.replace(/-error$/, ""));
        if (input) input.focus();
      } else {
        fieldError("wait-options-error", (result.data && result.data.detail) || words("Please try again.", "Something went wrong. Please try again."));
      }
      return null;
    }).catch(function () {
      fieldError("wait-options-error", words("We could not reach the bank. Please try again.", "Something went wrong. Please try again."));
      return null;
    });
  }

  $("callback-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var phone = $("callback-phone").value.trim();
    waitCall("/callback", { phone: phone || null }, ["callback-phone-error"]).then(function (data) {
      if (!data) return;
      finishWaiting(words(
        "We will call you back" + (phone ? " on " + phone : "") + " when it is your turn. You can close this page.",
        "We will phone you" + (phone ? " on " + phone : "") + " when it is your turn. You can close this page."
      ));
    });
  });

  $("leave-message-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var email = $("leave-email").value.trim();
    var payload = { email: email, message: $("leave-message").value.trim(), name: $("chat-name").value.trim() || null };
    waitCall("/message", payload, ["leave-email-error", "leave-message-error"]).then(function (data) {
      if (!data) return;
      finishWaiting(words(
        "Thank you. We will answer by email to " + email + ". Your reference is " + data.reference + ".",
        "Thank you. We will email you at " + email + ". Your number is " + data.reference + "."
      ));
    });
  });

  // The chat ended without an adviser, on the customer's choice: nothing to rate.
  function finishWaiting(outcome) {
    ended = true;
    finished = true;
    sessionStorage.removeItem(STORE);
    if (socket) socket.close(1000);
    show($("wait-options"), false);
    setStatus(outcome);
    disableConversation();
    showAfter(outcome);
  }

  // ---------------------------------------------------------------- after the chat
  function disableConversation() {
    $("message-body").disabled = true;
    $("send-button").disabled = true;
    $("end-button").disabled = true;
  }

  function showAfter(outcome) {
    $("chat-outcome").textContent = outcome;
    show($("chat-after"), true);
    $("new-chat-button").focus();
  }

  function endChat(by, answered) {
    if (ended) return;
    ended = true;
    show($("wait-options"), false);
    setStatus(by === "customer"
      ? words("You ended the chat.", "You have finished the chat.")
      : answered
        ? words("The adviser has ended the chat.", "The chat has finished.")
        : words("The chat has ended.", "The chat has finished."));
    disableConversation();
    if (!answered) { // nobody answered: there is nothing to rate
      finished = true;
      sessionStorage.removeItem(STORE);
      showAfter(words("No adviser answered this chat. You are welcome to start a new one.", "Nobody answered. You can try again."));
      return;
    }
    show($("chat-feedback"), true);
    var first = document.querySelector("#feedback-form input[name=csat]");
    if (first) first.focus();
  }

  $("new-chat-button").addEventListener("click", function () {
    sessionStorage.removeItem(STORE);
    finished = true;
    if (socket) socket.close(1000);
    window.location.reload(); // the start form again (senior mode stays in the address)
  });

  $("feedback-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var picked = document.querySelector("#feedback-form input[name=csat]:checked");
    if (!picked) { fieldError("feedback-error", words("Choose a rating from 1 to 5.", "Please pick a number.")); return; }
    var comment = $("feedback-comment").value.trim();
    fetch("/chat/" + encodeURIComponent(chatState.interaction_id) + "/feedback", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-Chat-Token": chatState.token },
      body: JSON.stringify({ csat: Number(picked.value), comment: comment || null }),
    }).then(function (response) {
      if (response.ok || response.status === 409) {
        show($("feedback-form"), false);
        show($("feedback-thanks"), true);
        sessionStorage.removeItem(STORE);
        finished = true;
        if (socket) socket.close(1000);
        showAfter("");
      } else {
        return response.json().then(function (p) { fieldError("feedback-error", p.detail || "Please try again."); });
      }
    });
  });

  // A reload keeps the conversation: the token lives in this tab's sessionStorage only.
  try { chatState = JSON.parse(sessionStorage.getItem(STORE) || "null"); } catch (err) { chatState = null; }
  if (chatState && chatState.interaction_id && chatState.token) openLive();
})();
