/* global NAF */
/**
 * networked-aframe adapter for the dlux presence gateway ("dlux").
 *
 * Plain ES2017, no build step, no dependencies. Load it after networked-aframe:
 *
 *   <script src="/naf-dlux-adapter.js"></script>
 *   <script>
 *     // What the gateway's join endpoint returned:
 *     window.DLUX_JOIN = { websocket_url: "wss://host/event/42", session_token: "…", ice_servers: [...] };
 *   </script>
 *   <a-scene networked-scene="adapter: dlux; room: 42; audio: true">
 *
 * or, before NAF connects: `NAF.connection.adapter.setJoinCredentials({websocket_url, session_token})`.
 * With `auth` instead of `session_token`, the adapter sends `{"type":"auth", ...auth}` as its first frame.
 *
 * Everything NAF sends travels over the gateway's WebSocket (docs/PROTOCOL.md); WebRTC is used only for
 * microphone audio and screen share, one RTCPeerConnection per remote peer, negotiated with the
 * "perfect negotiation" pattern over the relayed offer/answer/candidate messages — or, in a room whose voice
 * goes through the gateway's SFU (the server says `sfu_session`), one RTCPeerConnection to the SFU, whose
 * forwarded tracks `getMediaStream(clientId)` hands out per peer (`SfuLink` below).
 *
 * Page hooks: set `adapter.onChat`, `onMedia`, `onMuted`, `onPeerJoined`, `onPeerLeft`, `onError`, `onClose`
 * (each gets one detail object), or listen for the same events on `document.body` as CustomEvents named
 * `dlux-chat`, `dlux-media`, `dlux-muted`, `dlux-peer-joined`, `dlux-peer-left`, `dlux-error`, `dlux-close`.
 *
 * A dropped connection resumes by itself (docs/PROTOCOL.md, "Resuming"): the adapter reconnects with jittered
 * backoff and the resume token of its last `welcome`/`resumed`, keeps NAF's peers and entities meanwhile, and
 * both sides write again what the drop lost, so NAF sees nothing. Hooks `onReconnecting`, `onResumed`,
 * `onPeerReconnecting`, `onPeerResumed` (and `dlux-*` events) tell the page. When the session cannot be resumed
 * (the window passed, a kick), the adapter calls `onCredentialsNeeded({code, reason})`, which returns (a promise
 * of) fresh join credentials, and joins again with them, retrying with backoff; without that hook NAF's
 * connect-failure listener gets the close as before.
 */
(function () {
  "use strict";

  var CLOCK_SAMPLES = 10;
  // Frames sent since the welcome that are kept to be sent again if a drop lost them (see `resumed`).
  var SENT_LOG_MAX = 256;
  // Close codes of a drop rather than a refusal: the session is resumed.
  var RESUMABLE_CLOSES = [1001, 1005, 1006, 1011, 1012, 1013, 1014];
  // Close codes after which joining again is pointless: superseded by another tab, banned, no ticket.
  var FINAL_CLOSES = [4000, 4003, 4403];
  // Reconnect backoff: the first try at once, then doubling from 250 ms up to 5 s, each with full jitter.
  var BACKOFF_FIRST_MS = 250;
  var BACKOFF_MAX_MS = 5000;
  var CREDENTIALS_BACKOFF_MAX_MS = 30000;
  // Resume attempts that never reached a server before the node counts as gone: with several gateway nodes
  // (README, "Several nodes") the session was held by a node that died, and a fresh join through
  // `onCredentialsNeeded` gets a live node's URL from the join endpoint instead of waiting out the window.
  var UNREACHABLE_MAX = 3;
  // At most this many frames wait for the welcome; NAF sends one sync per networked entity.
  var BEFORE_WELCOME_MAX = 256;
  // The presence protocol version this adapter speaks, announced as `?protocol=` (docs/PROTOCOL.md,
  // "Batched frames"): from 2 on, the gateway may pack several frames into one `batch` frame.
  var PROTOCOL_VERSION = 2;

  function log() {
    if (typeof NAF !== "undefined" && NAF.log) NAF.log.write.apply(NAF.log, arguments);
  }

  function warn() {
    if (typeof NAF !== "undefined" && NAF.log) NAF.log.warn.apply(NAF.log, arguments);
    else console.warn.apply(console, arguments);
  }

  function adapterConstant(name, fallback) {
    return typeof NAF !== "undefined" && NAF.adapters && NAF.adapters[name] !== undefined ? NAF.adapters[name] : fallback;
  }

  /** One RTCPeerConnection to one remote peer, for audio and screen share only. */
  class PeerLink {
    constructor(adapter, remoteId) {
      this.adapter = adapter;
      this.remoteId = remoteId;
      // Perfect negotiation: on an offer collision the polite side yields.
      this.polite = String(adapter.myId) > String(remoteId);
      this.makingOffer = false;
      this.ignoreOffer = false;
      this.senders = { audio: null, video: null };

      var pc = (this.pc = new RTCPeerConnection({ iceServers: adapter.iceServers }));
      var self = this;
      pc.onicecandidate = function (event) {
        var candidate = event.candidate ? (event.candidate.toJSON ? event.candidate.toJSON() : event.candidate) : null;
        adapter.sendFrame({ type: "candidate", to: remoteId, candidate: candidate });
      };
      pc.onnegotiationneeded = async function () {
        try {
          self.makingOffer = true;
          await pc.setLocalDescription();
          adapter.sendFrame({ type: "offer", to: remoteId, sdp: pc.localDescription.sdp });
        } catch (e) {
          warn("dlux: offer to", remoteId, "failed", e);
        } finally {
          self.makingOffer = false;
        }
      };
      pc.ontrack = function (event) {
        adapter.remoteTrack(remoteId, event.track, event.streams && event.streams[0]);
      };
      pc.onconnectionstatechange = function () {
        if (pc.connectionState === "failed" && pc.restartIce) pc.restartIce();
      };
    }

    async handleSignal(msg) {
      var pc = this.pc;
      try {
        if (msg.type === "offer" || msg.type === "answer") {
          var collision = msg.type === "offer" && (this.makingOffer || pc.signalingState !== "stable");
          this.ignoreOffer = !this.polite && collision;
          if (this.ignoreOffer) return;
          await pc.setRemoteDescription({ type: msg.type, sdp: msg.sdp });
          if (msg.type === "offer") {
            await pc.setLocalDescription();
            this.adapter.sendFrame({ type: "answer", to: this.remoteId, sdp: pc.localDescription.sdp });
          }
        } else if (msg.type === "candidate") {
          try {
            await pc.addIceCandidate(msg.candidate || null);
          } catch (e) {
            if (!this.ignoreOffer) throw e;
          }
        }
      } catch (e) {
        warn("dlux: signalling with", this.remoteId, "failed", e);
      }
    }

    /** Sends `track` (or stops sending, with null) as this peer's audio or video. */
    setTrack(kind, track, stream) {
      var sender = this.senders[kind];
      if (track) {
        if (sender) sender.replaceTrack(track);
        else this.senders[kind] = this.pc.addTrack(track, stream);
      } else if (sender) {
        this.pc.removeTrack(sender);
        this.senders[kind] = null;
      }
    }

    setIceServers(iceServers) {
      try {
        this.pc.setConfiguration({ iceServers: iceServers });
      } catch (e) {
        warn("dlux: could not update ICE servers", e);
      }
    }

    close() {
      this.pc.close();
    }
  }


  /**
   * The one RTCPeerConnection to the gateway's SFU, in rooms whose voice goes through it (`sfu_session`,
   * docs/PROTOCOL.md "SFU"). It offers, in this order: a send-only audio and a send-only video transceiver
   * when the server lets this seat publish (the microphone and the screen share are put on them with
   * `replaceTrack`, so neither needs a renegotiation), then `audio_slots` receive-only audio transceivers and
   * one receive-only video transceiver. `sfu_tracks` says whose voice plays in each receive-only audio slot
   * and whose screen in the video one; the adapter hands those tracks out as that peer's streams, so
   * `getMediaStream(clientId)` and NAF's `networked-audio-source` work as in a mesh.
   */
  function defaultScreenLayer() {
    var small = typeof window !== "undefined" && window.matchMedia &&
      window.matchMedia("(max-width: 900px), (pointer: coarse)").matches;
    return small ? "low" : "high";
  }

  class SfuLink {
    constructor(adapter, session) {
      this.adapter = adapter;
      this.publish = !!session.publish;
      this.slots = [];
      this.screenSlot = null;
      this.tracks = { audio: [], screen: null };
      // A grant from a relay configured without URLs names none: RTCPeerConnection refuses an empty `urls`.
      var iceServers = (adapter.iceServers || []).filter(function (s) {
        return s && s.urls && s.urls.length;
      });
      var config = { iceServers: iceServers };
      if (adapter.iceTransportPolicy) config.iceTransportPolicy = adapter.iceTransportPolicy;
      var pc = (this.pc = new RTCPeerConnection(config));
      this.audioSender = null;
      this.videoSender = null;
      if (this.publish) {
        this.audioSender = pc.addTransceiver("audio", { direction: "sendonly" }).sender;
        // The screen share goes out as two simulcast layers, full and half resolution: the SFU gives each
        // listener the one it asked for (`sfu_layer`), so a phone does not download a desktop's full screen.
        this.videoSender = pc.addTransceiver("video", {
          direction: "sendonly",
          sendEncodings: [
            { rid: "l", scaleResolutionDownBy: 2, maxBitrate: 500000 },
            { rid: "h", maxBitrate: 2500000 },
          ],
        }).sender;
      }
      for (var i = 0; i < Math.max(1, session.audio_slots | 0); i++) {
        this.slots.push({ transceiver: pc.addTransceiver("audio", { direction: "recvonly" }), track: null });
      }
      this.screenSlot = { transceiver: pc.addTransceiver("video", { direction: "recvonly" }), track: null };
      var self = this;
      pc.ontrack = function (event) {
        self.trackArrived(event.transceiver, event.track);
      };
      pc.onconnectionstatechange = function () {
        adapter.emit("sfu-state", { state: pc.connectionState });
      };
      this.syncLocalMedia();
    }

    async negotiate() {
      try {
        await this.pc.setLocalDescription(await this.pc.createOffer());
        // The SFU is ICE-lite: it learns this browser's address from its checks, no candidates are sent.
        this.adapter.sendSfuFrame({ type: "sfu_offer", sdp: this.pc.localDescription.sdp });
      } catch (e) {
        warn("dlux: SFU offer failed", e);
      }
    }

    async answered(sdp) {
      try {
        await this.pc.setRemoteDescription({ type: "answer", sdp: sdp });
      } catch (e) {
        warn("dlux: SFU answer refused", e);
        return;
      }
      // Now that the SFU knows this connection: which layer of a simulcast screen share it should get.
      this.adapter.sendSfuFrame({ type: "sfu_layer", screen: this.adapter.screenLayer });
    }

    /** Puts the adapter's microphone and screen on the send-only transceivers (or takes them off). */
    syncLocalMedia() {
      if (!this.publish) return;
      var adapter = this.adapter;
      var mic = adapter.localAudio && !adapter.muted ? adapter.localAudio.getAudioTracks()[0] : null;
      var screen = adapter.screenStream ? adapter.screenStream.getVideoTracks()[0] : null;
      if (this.audioSender.track !== mic) this.audioSender.replaceTrack(mic || null);
      if (this.videoSender.track !== screen) this.videoSender.replaceTrack(screen || null);
    }

    trackArrived(transceiver, track) {
      for (var i = 0; i < this.slots.length; i++) {
        if (this.slots[i].transceiver === transceiver) this.slots[i].track = track;
      }
      if (this.screenSlot.transceiver === transceiver) this.screenSlot.track = track;
      this.handOut();
    }

    /** `sfu_tracks`: who is in each slot now. */
    setTracks(msg) {
      this.tracks = { audio: Array.isArray(msg.audio) ? msg.audio : [], screen: msg.screen || null };
      this.handOut();
    }

    /** Each slot's track becomes its current holder's stream (once: a stream already handed out is kept). */
    handOut() {
      var self = this;
      function give(holder, track) {
        if (!holder || !track || holder === self.adapter.myId) return;
        var current = self.adapter.remoteStreams[holder];
        var kind = track.kind === "video" ? "video" : "audio";
        if (current && current[kind] && current[kind].getTracks()[0] === track) return;
        self.adapter.remoteTrack(holder, track);
      }
      for (var i = 0; i < this.slots.length; i++) give(this.tracks.audio[i], this.slots[i].track);
      give(this.tracks.screen, this.screenSlot.track);
    }

    close() {
      this.pc.close();
    }
  }

  class DluxAdapter {
    constructor() {
      this.app = "default";
      this.room = "default";
      this.serverUrl = null;
      this.credentials = null;
      this.webRtcOptions = { audio: false, video: false, datachannel: true };

      this.ws = null;
      this.myId = null;
      this.myRoomJoinTime = null;
      this.welcomed = false;
      this.closedByUs = false;
      // Frames NAF sends between connect() and the welcome (its first sync of the scene's entities): kept in
      // order and sent once the server has seated us, instead of dropped.
      this.beforeWelcome = [];

      this.occupants = {}; // client id -> joined_at (what NAF's occupant listener expects)
      this.peers = {}; // client id -> { identity, role, mic, screen, muted }
      this.openClients = new Set(); // peers NAF has been told are open
      this.links = {}; // client id -> PeerLink
      // Rooms whose voice goes through the SFU: the server's `sfu_session`, and the one connection to it.
      this.sfuSession = null;
      this.sfu = null;
      // "relay" forces every connection through TURN (e.g. a network that blocks UDP); from the join credentials.
      this.iceTransportPolicy = null;
      // The layer of a simulcast screen share this page gets: "low" on a small or touch screen (a phone, a
      // headset's browser), "high" otherwise; `setScreenLayer` overrides it.
      this.screenLayer = defaultScreenLayer();

      this.iceServers = [];
      this.localAudio = null;
      this.screenStream = null;
      this.muted = false;
      this.shard = 0;
      this.onStage = false;
      this.remoteStreams = {}; // client id -> { audio: MediaStream, video: MediaStream }
      this.pendingStreams = {}; // client id -> { audio: [resolve], video: [resolve] }

      this.timeOffsets = [];
      this.avgTimeOffset = 0;
      this.clockTimer = null;
      this.clockPings = 0;
      this.turnTimer = null;

      this.onChat = this.onMedia = this.onMuted = this.onPeerJoined = this.onPeerLeft = null;
      this.onError = this.onClose = null;

      // Resuming (docs/PROTOCOL.md): the token, frames read and sent in this session, the reconnect loop.
      this.resumeToken = null;
      this.received = 0;
      this.sentCount = 0;
      this.sentLog = [];
      this.reconnecting = false;
      this.resuming = false;
      this.reconnectAttempt = 0;
      this.reconnectTimer = null;
      this.reconnectDeadline = 0;
      // How long after a drop the server keeps the seat (its `resume_window_secs`).
      this.resumeWindowMs = 30000;
      this.onReconnecting = this.onResumed = this.onPeerReconnecting = this.onPeerResumed = null;
      this.onCredentialsNeeded = null;
    }

    /* ---- NAF adapter interface: configuration ---- */

    setServerUrl(url) {
      this.serverUrl = url;
    }

    setApp(app) {
      this.app = app;
    }

    setRoom(room) {
      this.room = room;
    }

    setWebRtcOptions(options) {
      this.webRtcOptions = Object.assign({}, this.webRtcOptions, options || {});
    }

    setServerConnectListeners(successListener, failureListener) {
      this.connectSuccess = successListener;
      this.connectFailure = failureListener;
    }

    setRoomOccupantListener(occupantListener) {
      this.occupantListener = occupantListener;
    }

    setDataChannelListeners(openListener, closedListener, messageListener) {
      this.openListener = openListener;
      this.closedListener = closedListener;
      this.messageListener = messageListener;
    }

    /**
     * The join credentials from the gateway's join endpoint: `websocket_url`, and `session_token`
     * (sent as `?token=`) or `auth` (sent as the first frame), plus optional `ice_servers`.
     * Falls back to `window.DLUX_JOIN`.
     */
    setJoinCredentials(credentials) {
      this.credentials = credentials;
    }

    /* ---- NAF adapter interface: connection ---- */

    connect() {
      var creds = this.credentials || (typeof window !== "undefined" && window.DLUX_JOIN) || {};
      var url = this.socketUrl(this.resuming ? Object.assign({}, creds, { session_token: null }) : creds);
      if (this.resuming) {
        url += (url.indexOf("?") === -1 ? "?" : "&") + "resume=" + encodeURIComponent(this.resumeToken) + "&received=" + this.received;
      }
      if (creds.ice_servers) this.iceServers = creds.ice_servers;
      if (creds.ice_transport_policy) this.iceTransportPolicy = creds.ice_transport_policy;
      this.closedByUs = false;
      this.welcomed = false;
      var resuming = this.resuming;
      log("dlux: connecting to", url.replace(/(token|resume)=[^&]*/g, "$1=…"));

      var ws;
      var opened = false;
      try {
        ws = this.ws = new WebSocket(url);
      } catch (e) {
        this.fail(4400, String(e && e.message ? e.message : e));
        return;
      }
      var self = this;
      ws.onopen = function () {
        opened = true;
        self.unreachable = 0;
        if (creds.auth && !resuming) ws.send(JSON.stringify(Object.assign({ type: "auth" }, creds.auth)));
      };
      ws.onmessage = function (event) {
        self.handleFrame(event.data);
      };
      ws.onclose = function (event) {
        if (!opened) self.unreachable = (self.unreachable || 0) + 1;
        if (self.ws === ws) self.handleClose(event.code, event.reason);
      };
      ws.onerror = function () {
        // A close event with the code follows.
      };
    }

    socketUrl(creds) {
      var url = creds.websocket_url || this.serverUrl;
      var scheme = typeof location !== "undefined" && location.protocol === "https:" ? "wss://" : "ws://";
      var host = typeof location !== "undefined" ? location.host : "localhost";
      var room = "/event/" + encodeURIComponent(this.room);
      if (!url || url === "/") url = room;
      if (url.charAt(0) === "/") url = scheme + host + url;
      else if (/^https?:/.test(url)) url = url.replace(/^http/, "ws");
      // The gateway's origin alone (`https://gw.example`, `wss://gw.example/`): the room's path goes after it.
      var origin = /^(wss?:\/\/[^\/?#]+)\/?(\?.*)?$/.exec(url);
      if (origin) url = origin[1] + room + (origin[2] || "");
      if (creds.session_token) {
        url += (url.indexOf("?") === -1 ? "?" : "&") + "token=" + encodeURIComponent(creds.session_token);
      }
      // Friends who share a group code are placed in the same shard while it has room.
      if (creds.group) url += (url.indexOf("?") === -1 ? "?" : "&") + "group=" + encodeURIComponent(creds.group);
      url += (url.indexOf("?") === -1 ? "?" : "&") + "protocol=" + PROTOCOL_VERSION;
      return url;
    }

    disconnect() {
      this.closedByUs = true;
      this.stopReconnecting();
      var ws = this.ws;
      this.teardown();
      if (ws && ws.readyState <= 1) ws.close(1000, "bye");
    }

    shouldStartConnectionTo() {
      // Every admitted peer is reachable through the relay.
      return true;
    }

    startStreamConnection(clientId) {
      this.openClients.add(clientId);
      if (this.openListener) this.openListener(clientId); // NAF's full sync to this peer
    }

    closeStreamConnection(clientId) {
      if (this.openClients.delete(clientId) && this.closedListener) this.closedListener(clientId);
    }

    getConnectStatus(clientId) {
      return this.openClients.has(clientId)
        ? adapterConstant("IS_CONNECTED", "IS_CONNECTED")
        : adapterConstant("NOT_CONNECTED", "NOT_CONNECTED");
    }

    getServerTime() {
      return Date.now() + this.avgTimeOffset;
    }

    /* ---- NAF adapter interface: data ---- */

    sendData(clientId, dataType, data) {
      this.sendFrame({ type: "send", to: clientId, data_type: dataType, data: data, guaranteed: false });
    }

    sendDataGuaranteed(clientId, dataType, data) {
      this.sendFrame({ type: "send", to: clientId, data_type: dataType, data: data, guaranteed: true });
    }

    broadcastData(dataType, data) {
      this.sendFrame({ type: "broadcast", data_type: dataType, data: data, guaranteed: false });
    }

    broadcastDataGuaranteed(dataType, data) {
      this.sendFrame({ type: "broadcast", data_type: dataType, data: data, guaranteed: true });
    }

    /* ---- Chat, moderation, TURN ---- */

    sendChat(text) {
      this.sendFrame({ type: "chat", text: String(text) });
    }

    /** Host only; the server refuses others with an `error` frame. */
    mute(clientId, muted) {
      this.sendFrame({ type: "mute", target: clientId, muted: muted !== false });
    }

    kick(clientId) {
      this.sendFrame({ type: "kick", target: clientId });
    }

    ban(clientId) {
      this.sendFrame({ type: "ban", target: clientId });
    }

    requestTurnRefresh() {
      this.sendFrame({ type: "turn_refresh" });
    }

    /* ---- Shards and the stage (docs/PROTOCOL.md, "Shards and the stage") ---- */

    /** The shard this page sees (0 in an unsharded event); `isOnStage()` whether it is seen in every shard. */
    getShard() {
      return this.shard;
    }

    isOnStage() {
      return this.onStage;
    }

    /** Moves to another shard with room: `shard`, or (without one) the fullest other shard. */
    switchShard(shard) {
      var frame = { type: "switch_shard" };
      if (shard !== undefined && shard !== null) frame.shard = shard;
      this.sendFrame(frame);
    }

    /** Host only: put an attendee on the stage, or take it off. */
    inviteToStage(clientId) {
      this.sendFrame({ type: "invite_to_stage", target: clientId });
    }

    removeFromStage(clientId) {
      this.sendFrame({ type: "remove_from_stage", target: clientId });
    }

    /** Host only: a line to every shard. */
    announce(text) {
      this.sendFrame({ type: "announce", text: String(text) });
    }

    /** `shard_changed`: this page sees another shard now; NAF forgets the peers left behind and syncs the new. */
    shardChanged(msg) {
      var self = this;
      var next = msg.occupants || {};
      this.shard = msg.shard;
      this.onStage = !!msg.stage;
      var gone = Object.keys(this.occupants).filter(function (id) {
        return !next[id];
      });
      if (gone.length) this.dropPeers(gone);
      Object.keys(next).forEach(function (id) {
        if (!self.occupants[id]) self.rememberPeer(next[id]);
      });
      this.notifyOccupants();
      this.emit("shard-changed", { shard: msg.shard, stage: !!msg.stage });
    }

    /** `stage`: someone came on the stage or left it. On coming on, this page's entities go to every shard. */
    stageChanged(msg) {
      if (this.peers[msg.client_id]) this.peers[msg.client_id].stage = msg.on_stage;
      if (msg.client_id === this.myId) {
        this.onStage = !!msg.on_stage;
        var naf = typeof NAF !== "undefined" ? NAF : null;
        // The shards that did not see us yet need a first sync of everything this page owns.
        if (msg.on_stage && naf && naf.connection && naf.connection.entities && naf.connection.entities.completeSync) {
          naf.connection.entities.completeSync(undefined, true);
        }
      }
      this.emit("stage", msg);
    }

    /* ---- Media ---- */

    /** "high" or "low": the layer of a simulcast screen share this page receives through the SFU. */
    setScreenLayer(layer) {
      if (layer !== "high" && layer !== "low") throw new Error('setScreenLayer: "high" or "low"');
      this.screenLayer = layer;
      if (this.sfu) this.sendSfuFrame({ type: "sfu_layer", screen: layer });
    }

    /** Resolves with the peer's audio (default) or screen-share ("video") stream once it arrives. */
    getMediaStream(clientId, type) {
      var kind = type === "video" ? "video" : "audio";
      if (clientId === this.myId) {
        var local = kind === "audio" ? this.localAudio : this.screenStream;
        return local ? Promise.resolve(local) : Promise.reject(new Error("no local " + kind));
      }
      var streams = this.remoteStreams[clientId];
      if (streams && streams[kind]) return Promise.resolve(streams[kind]);
      var pending = (this.pendingStreams[clientId] = this.pendingStreams[clientId] || { audio: [], video: [] });
      return new Promise(function (resolve) {
        pending[kind].push(resolve);
      });
    }

    async enableMicrophone(enabled) {
      if (enabled && this.muted) {
        this.emit("error", { code: "muted", message: "muted by a host" });
        return false;
      }
      if (enabled && this.sfuSession && !this.sfuSession.publish) {
        // In an SFU room only the seats the server lets publish send audio: a listener's microphone stays off.
        return false;
      }
      if (enabled) {
        if (!this.localAudio) {
          this.localAudio = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
        }
        var track = this.localAudio.getAudioTracks()[0];
        track.enabled = true;
        if (this.sfuSession) {
          if (this.sfu) this.sfu.syncLocalMedia();
        } else {
          this.forEachPeer(function (link) {
            link.setTrack("audio", track, this.localAudio);
          });
        }
        this.sendFrame({ type: "media", mic: true });
      } else {
        this.stopMicrophone();
        this.sendFrame({ type: "media", mic: false });
      }
      return true;
    }

    stopMicrophone() {
      if (!this.localAudio) return;
      var stopped = this.localAudio;
      this.localAudio = null;
      if (this.sfu) this.sfu.syncLocalMedia();
      this.localAudio = stopped;
      Object.keys(this.links).forEach(function (id) {
        this.links[id].setTrack("audio", null);
      }, this);
      this.localAudio.getTracks().forEach(function (t) {
        t.stop();
      });
      this.localAudio = null;
    }

    async startScreenShare() {
      if (this.screenStream) return this.screenStream;
      var stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      var track = stream.getVideoTracks()[0];
      var self = this;
      track.onended = function () {
        self.stopScreenShare();
      };
      this.screenStream = stream;
      if (this.sfuSession) {
        if (this.sfu) this.sfu.syncLocalMedia();
      } else {
        this.forEachPeer(function (link) {
          link.setTrack("video", track, stream);
        });
      }
      this.sendFrame({ type: "media", screen: true });
      return stream;
    }

    stopScreenShare() {
      if (!this.screenStream) return;
      var stopped = this.screenStream;
      this.screenStream = null;
      if (this.sfu) this.sfu.syncLocalMedia();
      this.screenStream = stopped;
      Object.keys(this.links).forEach(function (id) {
        this.links[id].setTrack("video", null);
      }, this);
      this.screenStream.getTracks().forEach(function (t) {
        t.stop();
      });
      this.screenStream = null;
      this.sendFrame({ type: "media", screen: false });
    }

    /* ---- Internals ---- */

    sendFrame(frame) {
      if (this.ws && this.ws.readyState === 1 && this.welcomed) {
        this.ws.send(JSON.stringify(frame));
        // Counted and kept: after a drop the server says how many it applied and the rest is sent again.
        this.sentCount++;
        this.sentLog.push(frame);
        if (this.sentLog.length > SENT_LOG_MAX) this.sentLog.shift();
      } else if (this.reconnecting && frame.guaranteed === false) {
        // A position update is stale by the time the connection is back; the next one supersedes it.
      } else if (((this.ws && this.ws.readyState <= 1) || this.reconnecting) && this.beforeWelcome.length < BEFORE_WELCOME_MAX) {
        this.beforeWelcome.push(frame);
      } else warn("dlux: not connected; dropped", frame.type);
    }

    /**
     * An SFU frame goes straight out: the gateway reads it before the room does, so (like `feed`) it is not
     * in the resume count, and after a drop the SFU connection is negotiated again instead of replayed.
     */
    sendSfuFrame(frame) {
      if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify(frame));
    }

    emit(name, detail) {
      var hook = this["on" + name.replace(/(^|-)(\w)/g, function (_, __, c) { return c.toUpperCase(); })];
      if (typeof hook === "function") hook.call(this, detail);
      if (typeof document !== "undefined" && document.body && typeof CustomEvent === "function") {
        document.body.dispatchEvent(new CustomEvent("dlux-" + name, { detail: detail }));
      }
    }

    fail(code, reason) {
      if (this.connectFailure) this.connectFailure(code, reason);
    }

    handleFrame(text) {
      var msg;
      try {
        msg = typeof text === "string" ? JSON.parse(text) : text;
      } catch (e) {
        warn("dlux: unreadable frame", e);
        return;
      }
      // Every message the server's queue wrote counts (not the host's `feed`, written beside it; an envelope
      // carrying several messages counts as those messages): a resume says how many were read (see `resumed`).
      if (msg.type !== "feed" && msg.type !== "batch" && String(msg.type).indexOf("sfu_") !== 0) this.received++;
      switch (msg.type) {
        case "batch":
          return this.handleBatch(msg);
        case "welcome":
          return this.welcome(msg);
        case "resumed":
          return this.resumed(msg);
        case "snapshot":
          return this.snapshot(msg);
        case "peer_reconnecting":
          if (this.peers[msg.client_id]) this.peers[msg.client_id].reconnecting = true;
          return this.emit("peer-reconnecting", msg);
        case "peer_resumed":
          if (this.peers[msg.client_id]) this.peers[msg.client_id].reconnecting = false;
          return this.emit("peer-resumed", msg);
        case "peer_joined":
          return this.peerJoined(msg);
        case "peer_left":
          this.dropPeers([msg.client_id]);
          return this.emit("peer-left", msg);
        case "send":
        case "broadcast":
          if (this.messageListener) this.messageListener(msg.from, msg.data_type, msg.data);
          return;
        case "pong":
          return this.clockSample(msg);
        case "chat":
          return this.emit("chat", msg);
        case "media":
          if (this.peers[msg.from]) Object.assign(this.peers[msg.from], { mic: msg.mic, screen: msg.screen });
          return this.emit("media", msg);
        case "offer":
        case "answer":
        case "candidate":
          // In an SFU room nobody opens browser-to-browser connections.
          if (this.sfuSession) return;
          return this.link(msg.from).handleSignal(msg);
        case "sfu_session":
          return this.sfuSessionStarted(msg);
        case "sfu_answer":
          if (this.sfu) this.sfu.answered(msg.sdp);
          return;
        case "sfu_tracks":
          this.sfuTracks = msg;
          if (this.sfu) this.sfu.setTracks(msg);
          return;
        case "sfu_error":
          warn("dlux: the SFU refused:", msg.message);
          return this.emit("error", { code: "sfu", message: msg.message });
        case "muted":
          return this.mutedBy(msg);
        case "turn":
          return this.turnGrant(msg);
        case "shard_changed":
          return this.shardChanged(msg);
        case "stage":
          return this.stageChanged(msg);
        case "announcement":
          return this.emit("announcement", msg);
        case "error":
          warn("dlux: server refused:", msg.code, msg.message);
          return this.emit("error", msg);
        default:
          log("dlux: ignoring", msg.type);
      }
    }

    /* ---- batched frames (protocol 2) ---- */

    /**
     * `{"type":"batch","frames":[…]}`: several server frames written at once. Each is handled in
     * order, exactly as if it had come alone; one that throws does not cost the others.
     */
    handleBatch(msg) {
      var frames = Array.isArray(msg.frames) ? msg.frames : [];
      for (var i = 0; i < frames.length; i++) {
        if (!frames[i] || typeof frames[i] !== "object" || frames[i].type === "batch") {
          warn("dlux: ignoring a malformed frame in a batch");
          continue;
        }
        try {
          this.handleFrame(frames[i]);
        } catch (e) {
          warn("dlux: a batched frame failed", e);
        }
      }
    }

    welcome(msg) {
      var previousId = this.myId;
      this.resumeToken = msg.resume_token || null;
      if (msg.resume_window_secs > 0) this.resumeWindowMs = msg.resume_window_secs * 1000;
      this.received = 1;
      this.sentCount = 0;
      this.sentLog = [];
      this.stopReconnecting();
      this.myId = msg.client_id;
      this.myRoomJoinTime = msg.joined_at;
      this.muted = !!msg.muted;
      this.shard = msg.shard || 0;
      this.onStage = !!msg.stage;
      this.avgTimeOffset = msg.server_time - Date.now();
      this.welcomed = true;
      var queued = this.beforeWelcome.splice(0);
      for (var i = 0; i < queued.length; i++) this.sendFrame(queued[i]);
      var self = this;
      Object.keys(msg.occupants || {}).forEach(function (id) {
        self.rememberPeer(msg.occupants[id]);
      });
      if (msg.turn) this.turnGrant(msg.turn);
      this.startClockSync();
      log("dlux: joined room", msg.room_id, "as", this.myId);
      if (this.connectSuccess) this.connectSuccess(this.myId);
      // A fresh join after a session was lost: what this page owned is its own under the new id.
      if (previousId && previousId !== this.myId) this.reownEntities(previousId, this.myId);
      this.notifyOccupants();
      if (this.sfuSession) this.startSfu();
      if (this.webRtcOptions.audio && !this.muted) {
        this.enableMicrophone(true).catch(function (e) {
          warn("dlux: microphone unavailable", e);
        });
      }
    }

    rememberPeer(p) {
      this.occupants[p.client_id] = p.joined_at;
      this.peers[p.client_id] = { identity: p.identity, role: p.role, mic: p.mic, screen: p.screen, muted: p.muted };
    }

    peerJoined(msg) {
      this.rememberPeer(msg);
      this.notifyOccupants();
      // Send our live media to the newcomer.
      if (!this.sfuSession && (this.localAudio || this.screenStream)) this.attachLocalMedia(this.link(msg.client_id));
      this.emit("peer-joined", msg);
    }

    notifyOccupants() {
      if (this.occupantListener) this.occupantListener(Object.assign({}, this.occupants));
    }

    /** Forgets peers: NAF closes them via closeStreamConnection; anything still open is closed here. */
    dropPeers(ids) {
      var self = this;
      ids.forEach(function (id) {
        delete self.occupants[id];
        delete self.peers[id];
        delete self.remoteStreams[id];
        delete self.pendingStreams[id];
        if (self.links[id]) {
          self.links[id].close();
          delete self.links[id];
        }
      });
      this.notifyOccupants();
      ids.forEach(function (id) {
        self.closeStreamConnection(id);
      });
    }

    link(remoteId) {
      var link = this.links[remoteId];
      if (!link) {
        link = this.links[remoteId] = new PeerLink(this, remoteId);
        this.attachLocalMedia(link);
      }
      return link;
    }

    attachLocalMedia(link) {
      if (this.localAudio) link.setTrack("audio", this.localAudio.getAudioTracks()[0], this.localAudio);
      if (this.screenStream) link.setTrack("video", this.screenStream.getVideoTracks()[0], this.screenStream);
    }

    forEachPeer(fn) {
      Object.keys(this.occupants).forEach(function (id) {
        fn.call(this, this.link(id));
      }, this);
    }

    remoteTrack(clientId, track, stream) {
      var kind = track.kind === "video" ? "video" : "audio";
      var streams = (this.remoteStreams[clientId] = this.remoteStreams[clientId] || {});
      streams[kind] = stream || new MediaStream([track]);
      var pending = this.pendingStreams[clientId];
      if (pending && pending[kind].length) {
        pending[kind].splice(0).forEach(function (resolve) {
          resolve(streams[kind]);
        });
      }
    }

    /**
     * `sfu_session`: this room's voice goes through the SFU (it may come before the welcome, or later when a
     * room in `auto` mode grows past its threshold). Browser-to-browser links are closed and one connection
     * to the SFU is opened; the same session again (after a resume) keeps the connection.
     */
    sfuSessionStarted(msg) {
      var same = this.sfuSession && this.sfu && this.sfuSession.publish === !!msg.publish &&
        this.sfuSession.audio_slots === msg.audio_slots && this.sfu.pc.connectionState !== "failed";
      var publishChanged = !this.sfuSession || this.sfuSession.publish !== !!msg.publish;
      this.sfuSession = { publish: !!msg.publish, audio_slots: msg.audio_slots };
      // The server's decision (a host put this seat on the stage or took it off): the page may offer its mic now.
      if (publishChanged) this.emit("sfu-session", { publish: !!msg.publish });
      if (same) return;
      var self = this;
      Object.keys(this.links).forEach(function (id) {
        self.links[id].close();
        delete self.links[id];
      });
      if (!msg.publish) this.stopMicrophone();
      if (this.welcomed) this.startSfu();
    }

    startSfu() {
      if (this.sfu) this.sfu.close();
      this.sfu = new SfuLink(this, this.sfuSession);
      if (this.sfuTracks) this.sfu.setTracks(this.sfuTracks);
      this.sfu.negotiate();
    }

    mutedBy(msg) {
      if (this.peers[msg.client_id]) {
        this.peers[msg.client_id].muted = msg.muted;
        if (msg.muted) this.peers[msg.client_id].mic = false;
      }
      if (msg.client_id === this.myId) {
        this.muted = msg.muted;
        // The server already counts our mic as off and refuses audio renegotiation.
        if (msg.muted) this.stopMicrophone();
      }
      this.emit("muted", msg);
    }

    turnGrant(grant) {
      this.iceServers = grant.ice_servers || [];
      var self = this;
      Object.keys(this.links).forEach(function (id) {
        self.links[id].setIceServers(self.iceServers);
      });
      clearTimeout(this.turnTimer);
      if (grant.expires_at) {
        // Renew a minute before expiry.
        var delay = Math.max(5000, grant.expires_at - this.getServerTime() - 60000);
        this.turnTimer = setTimeout(function () {
          self.requestTurnRefresh();
        }, Math.min(delay, 2147483647));
      }
    }

    startClockSync() {
      clearTimeout(this.clockTimer);
      this.clockPings = 0;
      this.timeOffsets = [];
      this.ping();
    }

    ping() {
      this.clockPings++;
      this.sendFrame({ type: "ping", client_time: Date.now() });
      var self = this;
      // Quick samples first, then one a minute.
      this.clockTimer = setTimeout(function () {
        self.ping();
      }, this.clockPings < CLOCK_SAMPLES ? 2000 : 60000);
    }

    clockSample(msg) {
      var now = Date.now();
      var rtt = now - msg.client_time;
      if (!(rtt >= 0)) return;
      this.timeOffsets.push(msg.server_time + rtt / 2 - now);
      if (this.timeOffsets.length > CLOCK_SAMPLES) this.timeOffsets.shift();
      this.avgTimeOffset =
        this.timeOffsets.reduce(function (a, b) {
          return a + b;
        }, 0) / this.timeOffsets.length;
    }

    teardown() {
      clearTimeout(this.clockTimer);
      clearTimeout(this.turnTimer);
      this.stopMicrophone();
      if (this.screenStream) {
        this.screenStream.getTracks().forEach(function (t) {
          t.stop();
        });
        this.screenStream = null;
      }
      this.dropPeers(Object.keys(this.occupants).concat(Array.from(this.openClients)));
      if (this.sfu) this.sfu.close();
      this.sfu = this.sfuSession = this.sfuTracks = null;
      this.beforeWelcome = [];
      this.ws = null;
    }

    handleClose(code, reason) {
      var wasWelcomed = this.welcomed;
      if (!this.closedByUs && this.resumeToken && RESUMABLE_CLOSES.indexOf(code) !== -1 && (wasWelcomed || this.reconnecting)) {
        // A drop: NAF keeps its peers and entities; the session resumes on a new connection.
        return this.dropped(code, reason);
      }
      if (!this.closedByUs && this.reconnecting && typeof this.onCredentialsNeeded === "function" && FINAL_CLOSES.indexOf(code) === -1) {
        // The session is over (the window passed, a kick, …): a fresh join with new credentials.
        return this.sessionLost(code, reason);
      }
      this.stopReconnecting();
      this.teardown();
      this.welcomed = false;
      if (!this.closedByUs) {
        // Rejections (4401, 4403, 4409, 4410, 4429, …) and later closes (4000 superseded,
        // 4001 kicked, 1001 shutdown, …) all reach NAF's failure listener.
        warn("dlux: connection closed", code, reason);
        this.fail(code, reason);
      }
      this.emit("close", { code: code, reason: reason, joined: wasWelcomed, by_client: this.closedByUs });
    }
  }

  /* ---- Resuming after a drop (docs/PROTOCOL.md, "Resuming") ---- */

  DluxAdapter.prototype.dropped = function (code, reason) {
    var first = !this.reconnecting;
    this.ws = null;
    this.welcomed = false;
    clearTimeout(this.clockTimer);
    if (first) {
      this.reconnecting = true;
      this.reconnectAttempt = 0;
      this.reconnectDeadline = Date.now() + this.resumeWindowMs;
      warn("dlux: connection dropped", code, reason, "- resuming");
      this.emit("reconnecting", { code: code, reason: reason });
    }
    if (Date.now() >= this.reconnectDeadline) return this.sessionLost(4401, "resume window passed");
    if (!first && this.unreachable >= UNREACHABLE_MAX && typeof this.onCredentialsNeeded === "function") {
      // The node holding the session is gone: join again, where the join endpoint says.
      return this.sessionLost(code, "node unreachable");
    }
    this.scheduleReconnect(BACKOFF_MAX_MS, this.resumeNow.bind(this));
  };

  /** Waits a jittered backoff, then runs `attempt`: at once the first time, then up to `max` ms. */
  DluxAdapter.prototype.scheduleReconnect = function (max, attempt) {
    var n = this.reconnectAttempt++;
    var ceiling = n === 0 ? 0 : Math.min(max, BACKOFF_FIRST_MS * Math.pow(2, n - 1));
    var delay = ceiling / 2 + Math.random() * (ceiling / 2);
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(attempt, delay);
  };

  DluxAdapter.prototype.resumeNow = function () {
    if (this.closedByUs) return;
    this.resuming = true;
    this.connect();
  };

  DluxAdapter.prototype.stopReconnecting = function () {
    this.unreachable = 0;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.reconnecting = false;
    this.resuming = false;
    this.reconnectAttempt = 0;
  };

  /** The session continues: send again what the server did not apply, then what waited, as if nothing happened. */
  DluxAdapter.prototype.resumed = function (msg) {
    var wasReconnecting = this.reconnecting;
    this.stopReconnecting();
    this.resumeToken = msg.resume_token || null;
    this.avgTimeOffset = msg.server_time - Date.now();
    this.welcomed = true;
    var lost = this.sentCount - msg.received;
    var resend = lost > 0 ? this.sentLog.slice(Math.max(0, this.sentLog.length - lost)) : [];
    if (lost > resend.length) warn("dlux:", lost - resend.length, "frames sent before the drop are lost");
    this.sentCount = msg.received;
    this.sentLog = [];
    var queued = this.beforeWelcome.splice(0);
    var self = this;
    resend.concat(queued).forEach(function (frame) {
      self.sendFrame(frame);
    });
    this.startClockSync();
    log("dlux: resumed as", this.myId, "- the server writes", msg.replayed, "frames again");
    if (wasReconnecting) this.emit("resumed", { client_id: msg.client_id, replayed: msg.replayed, resent: resend.length });
  };

  /** The room's persistent entities, before live traffic: to NAF as first syncs from their owners. */
  DluxAdapter.prototype.snapshot = function (msg) {
    var self = this;
    (msg.entities || []).forEach(function (entity) {
      if (self.messageListener) self.messageListener(entity.owner, "u", entity);
    });
  };

  /** The session could not be resumed: forget its peers, then join again with fresh credentials from the page. */
  DluxAdapter.prototype.sessionLost = function (code, reason) {
    var self = this;
    // The first request for credentials goes at once; failed ones back off.
    if (this.resumeToken) this.reconnectAttempt = 0;
    this.resuming = false;
    this.resumeToken = null;
    this.ws = null;
    this.welcomed = false;
    this.teardown();
    if (typeof this.onCredentialsNeeded !== "function") {
      this.stopReconnecting();
      this.fail(code, reason);
      this.emit("close", { code: code, reason: reason, joined: true, by_client: false });
      return;
    }
    this.reconnecting = true;
    this.scheduleReconnect(CREDENTIALS_BACKOFF_MAX_MS, function () {
      Promise.resolve()
        .then(function () {
          return self.onCredentialsNeeded({ code: code, reason: reason });
        })
        .then(function (credentials) {
          if (self.closedByUs) return;
          if (!credentials) throw new Error("no credentials");
          self.setJoinCredentials(credentials);
          self.connect();
        })
        .catch(function (e) {
          warn("dlux: fresh credentials failed", e);
          if (!self.closedByUs) self.sessionLost(code, reason);
        });
    });
  };

  /** After a fresh join (a new client id), entities this page owned are still its own. */
  DluxAdapter.prototype.reownEntities = function (oldId, newId) {
    if (typeof NAF === "undefined" || !NAF.entities || !NAF.entities.entities) return;
    var entities = NAF.entities.entities;
    Object.keys(entities).forEach(function (id) {
      var el = entities[id];
      var data = el && el.getAttribute && el.getAttribute("networked");
      if (!data) return;
      var change = {};
      if (data.owner === oldId) change.owner = newId;
      if (data.creator === oldId) change.creator = newId;
      if (Object.keys(change).length) el.setAttribute("networked", change);
    });
  };

  if (typeof window !== "undefined") window.DluxAdapter = DluxAdapter;
  if (typeof NAF !== "undefined" && NAF.adapters && NAF.adapters.register) {
    NAF.adapters.register("dlux", DluxAdapter);
  }
  if (typeof module !== "undefined" && module.exports) module.exports = DluxAdapter;
})();
