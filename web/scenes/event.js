/* global NAF */
/**
 * Wires the event scene to the dlux adapter: finds the event and its join credentials, sets the room,
 * connects, and drives the chat, microphone and screen-share controls through the adapter's API
 * (docs/PROTOCOL.md, "Adapter API beyond NAF's interface").
 *
 * Credentials, first found wins:
 *   - `#token=<session token>` in the address (the WebSocket URL is then `/event/<id>` on this origin);
 *   - sessionStorage `dlux-join:<id>`: the join endpoint's JSON response, stored there by the join page.
 * A session token admits once, so it is removed from both places as soon as it is read.
 *
 * `window.dluxScene` exposes the state (`status`, `clientId`, `failure: {code, reason}`) for pages and tests.
 */
(function () {
  "use strict";

  var FAILURES = {
    4400: "The gateway did not understand this request.",
    4401: "Your session has expired or was already used. Join the event again.",
    4403: "This ticket does not admit you to this event.",
    4409: "The room is full.",
    4410: "The event is not open right now.",
    4429: "Too many attempts; wait a moment and join again.",
    4000: "You joined this event from another window.",
    4001: "A host removed you from the event.",
  };

  var scene = document.querySelector("a-scene");
  var statusEl = document.getElementById("status");
  var micButton = document.getElementById("mic-toggle");
  var screenButton = document.getElementById("screen-toggle");
  var chatForm = document.getElementById("chat-form");
  var chatInput = document.getElementById("chat-input");
  var chatSend = document.getElementById("chat-send");
  var chatLog = document.getElementById("chat-log");

  var state = (window.dluxScene = { status: "starting", clientId: null, failure: null, eventId: null, adapter: null });

  function setStatus(status, text) {
    state.status = status;
    statusEl.dataset.state = status;
    statusEl.textContent = text;
  }

  function setControls(enabled) {
    [micButton, screenButton, chatInput, chatSend].forEach(function (el) {
      el.disabled = !enabled;
    });
  }

  /** The join credentials for `eventId`, or null. */
  function takeCredentials(eventId) {
    var hash = new URLSearchParams(location.hash.slice(1));
    var key = "dlux-join:" + eventId;
    var stored = null;
    try {
      stored = JSON.parse(sessionStorage.getItem(key) || "null");
      sessionStorage.removeItem(key);
    } catch (e) {
      stored = null;
    }
    if (hash.get("token")) {
      history.replaceState(null, "", location.pathname + location.search);
      return { websocket_url: "/event/" + encodeURIComponent(eventId), session_token: hash.get("token") };
    }
    if (stored && stored.session_token) {
      var turn = stored.turn_credentials;
      return {
        websocket_url: stored.websocket_url || "/event/" + encodeURIComponent(eventId),
        session_token: stored.session_token,
        ice_servers: turn && turn.urls ? [{ urls: turn.urls, username: turn.username, credential: turn.credential }] : undefined,
      };
    }
    return null;
  }

  function addChatLine(from, text) {
    var item = document.createElement("li");
    item.textContent = from + ": " + text;
    chatLog.appendChild(item);
    chatLog.scrollTop = chatLog.scrollHeight;
  }

  function adapter() {
    return NAF.connection.adapter;
  }

  var eventId = new URLSearchParams(location.search).get("event");
  state.eventId = eventId;
  if (!eventId || !/^[0-9]+$/.test(eventId)) {
    setStatus("failed", "No event given: open this page as event.html?event=<id>.");
    return;
  }
  var credentials = takeCredentials(eventId);
  if (!credentials) {
    setStatus("failed", "No ticket session for this event: join the event first.");
    return;
  }

  NAF.schemas.add({ template: "#avatar-template", components: ["position", "rotation"] });
  NAF.schemas.add({ template: "#prop-template", components: ["position", "rotation"] });

  // NAF's own connect-failure callback only logs; wrap it to tell the attendee why.
  var nafFailure = NAF.connection.connectFailure.bind(NAF.connection);
  NAF.connection.connectFailure = function (code, reason) {
    nafFailure(code, reason);
    state.failure = { code: code, reason: reason };
    setControls(false);
    setStatus("failed", (FAILURES[code] || "The connection closed.") + " (" + code + ")");
  };

  scene.addEventListener("adapter-ready", function (event) {
    var a = event.detail;
    state.adapter = a;
    a.setJoinCredentials(credentials);
    a.onChat = function (msg) {
      addChatLine(msg.identity || msg.from || "someone", msg.text);
    };
    // With `audio: true` the adapter turns the microphone on by itself once admitted: keep the button true
    // to whatever enableMicrophone did, whoever called it.
    var enableMicrophone = a.enableMicrophone.bind(a);
    a.enableMicrophone = function (enabled) {
      return enableMicrophone(enabled).then(function (ok) {
        showMicrophone(!!a.localAudio);
        return ok;
      });
    };
    a.onMuted = function (msg) {
      if (msg.client_id === a.myId && msg.muted) {
        showMicrophone(false);
        micButton.textContent = "Microphone off (muted by a host)";
      }
    };
    a.onMedia = function (msg) {
      if (msg.screen) showScreen(msg.from);
    };
    // A dropped connection resumes by itself (docs/PROTOCOL.md, "Resuming after a drop"): say so meanwhile.
    a.onReconnecting = function () {
      setStatus("reconnecting", "Connection lost; reconnecting…");
    };
    a.onResumed = function () {
      setStatus("connected", "Connected to event " + eventId + ".");
    };
  });

  document.body.addEventListener("connected", function (event) {
    state.clientId = event.detail.clientId;
    setControls(true);
    setStatus("connected", "Connected to event " + eventId + ".");
  });

  function showScreen(clientId) {
    adapter()
      .getMediaStream(clientId, "video")
      .then(function (stream) {
        var video = document.getElementById("screen-video-" + clientId);
        if (!video) {
          video = document.createElement("video");
          video.id = "screen-video-" + clientId;
          video.muted = true;
          video.playsInline = true;
          video.autoplay = true;
          document.querySelector("a-assets").appendChild(video);
        }
        video.srcObject = stream;
        video.play().catch(function () {});
        document.getElementById("stage-screen").setAttribute("material", "src: #" + video.id + "; shader: flat");
      });
  }

  function showMicrophone(on) {
    micButton.setAttribute("aria-pressed", String(on));
    micButton.textContent = on ? "Microphone on" : "Microphone off";
  }

  micButton.addEventListener("click", function () {
    var on = micButton.getAttribute("aria-pressed") !== "true";
    adapter()
      .enableMicrophone(on)
      .catch(function (e) {
        setStatus(state.status, "Microphone unavailable: " + e.message);
      });
  });

  screenButton.addEventListener("click", function () {
    var on = screenButton.getAttribute("aria-pressed") !== "true";
    if (!on) {
      adapter().stopScreenShare();
      screenButton.setAttribute("aria-pressed", "false");
      screenButton.textContent = "Share screen";
      return;
    }
    adapter()
      .startScreenShare()
      .then(function (stream) {
        screenButton.setAttribute("aria-pressed", "true");
        screenButton.textContent = "Stop sharing";
        stream.getVideoTracks()[0].addEventListener("ended", function () {
          screenButton.setAttribute("aria-pressed", "false");
          screenButton.textContent = "Share screen";
        });
      })
      .catch(function (e) {
        setStatus(state.status, "Screen share unavailable: " + e.message);
      });
  });

  chatForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = chatInput.value.trim();
    if (!text) return;
    adapter().sendChat(text); // the server echoes it back, stamped, to everyone including us
    chatInput.value = "";
  });

  function connect() {
    scene.setAttribute("networked-scene", "room", eventId);
    setStatus("connecting", "Connecting to event " + eventId + "…");
    scene.emit("connect");
  }
  if (scene.hasLoaded) connect();
  else scene.addEventListener("loaded", connect);
})();
