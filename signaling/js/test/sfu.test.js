// The adapter in a room whose voice goes through the gateway's SFU (docs/PROTOCOL.md, "SFU"), against a fake
// WebSocket and a fake RTCPeerConnection. Run: node --test signaling/js/test/
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");

class FakeSocket {
  constructor(url) {
    this.url = url;
    this.readyState = 1;
    this.sent = [];
    FakeSocket.last = this;
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close(code) {
    this.readyState = 3;
    this.closedWith = code;
  }
  serve(frame) {
    this.onmessage({ data: JSON.stringify(frame) });
  }
}

class FakeTrack {
  constructor(kind, label) {
    this.kind = kind;
    this.label = label;
    this.enabled = true;
  }
  stop() {
    this.stopped = true;
  }
}

class FakeStream {
  constructor(tracks) {
    this.tracks = tracks || [];
  }
  getTracks() {
    return this.tracks;
  }
  getAudioTracks() {
    return this.tracks.filter((t) => t.kind === "audio");
  }
  getVideoTracks() {
    return this.tracks.filter((t) => t.kind === "video");
  }
}

class FakePeerConnection {
  constructor(config) {
    this.config = config;
    this.transceivers = [];
    this.connectionState = "new";
    FakePeerConnection.all.push(this);
  }
  addTransceiver(kind, init) {
    const transceiver = {
      kind,
      direction: init.direction,
      sender: { track: null, replaceTrack(t) { this.track = t; return Promise.resolve(); } },
    };
    this.transceivers.push(transceiver);
    return transceiver;
  }
  async createOffer() {
    return { type: "offer", sdp: "offer-sdp-" + this.transceivers.map((t) => t.kind + ":" + t.direction).join(",") };
  }
  async setLocalDescription(d) {
    this.localDescription = d;
  }
  async setRemoteDescription(d) {
    this.remoteDescription = d;
  }
  close() {
    this.closed = true;
  }
  /** The SFU's media arriving on the transceiver at `index`. */
  deliver(index, label) {
    const transceiver = this.transceivers[index];
    const track = new FakeTrack(transceiver.kind, label);
    this.ontrack({ transceiver, track, streams: [] });
    return track;
  }
}
FakePeerConnection.all = [];

let gotUserMedia = 0;
global.WebSocket = FakeSocket;
global.RTCPeerConnection = FakePeerConnection;
global.MediaStream = FakeStream;
global.location = { protocol: "https:", host: "gw.example" };
Object.defineProperty(global, "navigator", {
  value: {
    mediaDevices: {
      async getUserMedia() {
        gotUserMedia++;
        return new FakeStream([new FakeTrack("audio", "mic")]);
      },
      async getDisplayMedia() {
        return new FakeStream([new FakeTrack("video", "screen")]);
      },
    },
  },
  configurable: true,
});
global.NAF = {
  log: { write() {}, warn() {}, error() {} },
  adapters: { IS_CONNECTED: "IS_CONNECTED", NOT_CONNECTED: "NOT_CONNECTED", register() {} },
};
const Adapter = require("../naf-dlux-adapter.js");

const flush = () => new Promise((resolve) => setImmediate(resolve));

function connected(audio) {
  const adapter = new Adapter();
  adapter.setServerConnectListeners(() => {}, () => {});
  adapter.setRoomOccupantListener(() => {});
  adapter.setDataChannelListeners(() => {}, () => {}, () => {});
  adapter.setRoom("42");
  adapter.setWebRtcOptions({ audio: !!audio, video: false, datachannel: true });
  adapter.setJoinCredentials({ websocket_url: "/event/42", session_token: "t", ice_transport_policy: "relay" });
  adapter.connect();
  return { adapter, ws: FakeSocket.last };
}

const welcome = (occupants) => ({ type: "welcome", client_id: "me", room_id: 42, joined_at: 5, server_time: Date.now(), occupants: occupants || {} });
const occupant = (id, role) => ({ client_id: id, identity: id, role, joined_at: 1, mic: true, screen: false, muted: false });

test("a listener opens one receive-only connection and hears the host in the slot sfu_tracks names", async () => {
  FakePeerConnection.all = [];
  gotUserMedia = 0;
  const { adapter, ws } = connected(true);
  // The session comes before the welcome (it is written beside the room's queue).
  ws.serve({ type: "sfu_session", publish: false, audio_slots: 3 });
  ws.serve(welcome({ host: occupant("host", "host"), bob: occupant("bob", "attendee") }));
  await flush();
  assert.equal(FakePeerConnection.all.length, 1, "one connection, to the SFU, not one per peer");
  const pc = FakePeerConnection.all[0];
  assert.equal(pc.config.iceTransportPolicy, "relay");
  assert.deepEqual(pc.transceivers.map((t) => t.kind + ":" + t.direction), ["audio:recvonly", "audio:recvonly", "audio:recvonly", "video:recvonly"]);
  assert.equal(gotUserMedia, 0, "a listener's microphone is never opened");
  const offer = ws.sent.find((f) => f.type === "sfu_offer");
  assert.ok(offer && offer.sdp.startsWith("offer-sdp-"));
  assert.equal(adapter.sentCount, ws.sent.filter((f) => f.type !== "sfu_offer").length, "SFU frames are outside the resume count");

  ws.serve({ type: "sfu_answer", sdp: "answer-sdp" });
  await flush();
  assert.deepEqual(pc.remoteDescription, { type: "answer", sdp: "answer-sdp" });
  const received = adapter.received;

  // NAF asks for the host's audio before it arrives; the slot's track and the map arrive in either order.
  const pending = adapter.getMediaStream("host");
  const track = pc.deliver(0, "slot0");
  ws.serve({ type: "sfu_tracks", audio: ["host", null, null], screen: null });
  const stream = await pending;
  assert.equal(stream.getTracks()[0], track);
  assert.equal(adapter.received, received, "sfu frames are not counted as the room's frames");

  // The screen share slot.
  const screenTrack = pc.deliver(3, "screen");
  ws.serve({ type: "sfu_tracks", audio: ["host", null, null], screen: "host" });
  assert.equal((await adapter.getMediaStream("host", "video")).getTracks()[0], screenTrack);

  // Mesh signalling from a peer is ignored: no browser-to-browser connection.
  ws.serve({ type: "offer", from: "bob", sdp: "x" });
  await flush();
  assert.equal(FakePeerConnection.all.length, 1);
  assert.equal(await adapter.enableMicrophone(true), false);
  adapter.disconnect();
  assert.ok(pc.closed);
});

test("a host publishes its microphone and screen on the send-only transceivers, and a mute takes the mic off", async () => {
  FakePeerConnection.all = [];
  const { adapter, ws } = connected(true);
  ws.serve(welcome({}));
  ws.serve({ type: "sfu_session", publish: true, audio_slots: 2 });
  await flush();
  await flush();
  const pc = FakePeerConnection.all.at(-1);
  assert.deepEqual(pc.transceivers.map((t) => t.kind + ":" + t.direction), ["audio:sendonly", "video:sendonly", "audio:recvonly", "audio:recvonly", "video:recvonly"]);
  assert.equal(pc.transceivers[0].sender.track.label, "mic");
  await adapter.startScreenShare();
  assert.equal(pc.transceivers[1].sender.track.label, "screen");
  assert.deepEqual(ws.sent.filter((f) => f.type === "media").map((f) => [f.mic, f.screen]), [[true, undefined], [undefined, true]]);

  ws.serve({ type: "muted", client_id: "me", muted: true, by: "other-host" });
  assert.equal(pc.transceivers[0].sender.track, null, "muted: nothing on the audio sender");
  adapter.stopScreenShare();
  assert.equal(pc.transceivers[1].sender.track, null);
  // The same session again (after a resume) keeps the connection.
  ws.serve({ type: "sfu_session", publish: true, audio_slots: 2 });
  assert.equal(FakePeerConnection.all.length, 1);
  adapter.disconnect();
});

test("a mesh room that grows past the threshold moves to the SFU: peer links close", async () => {
  FakePeerConnection.all = [];
  const { adapter, ws } = connected(false);
  ws.serve(welcome({ a: occupant("a", "attendee") }));
  ws.serve({ type: "offer", from: "a", sdp: "mesh-offer" });
  await flush();
  assert.equal(FakePeerConnection.all.length, 1, "a mesh link to a");
  const mesh = FakePeerConnection.all[0];
  ws.serve({ type: "sfu_session", publish: false, audio_slots: 3 });
  await flush();
  assert.ok(mesh.closed, "the mesh link closed");
  assert.equal(FakePeerConnection.all.length, 2);
  assert.ok(ws.sent.some((f) => f.type === "sfu_offer"));
  adapter.disconnect();
});

test("invited onto the stage, a listener negotiates a publishing connection; taken off, it listens again", async () => {
  FakePeerConnection.all = [];
  const { adapter, ws } = connected(false);
  const told = [];
  adapter.onSfuSession = (d) => told.push(d.publish);
  ws.serve({ type: "sfu_session", publish: false, audio_slots: 2 });
  ws.serve(welcome({}));
  await flush();
  assert.equal(await adapter.enableMicrophone(true), false, "a listener's microphone stays off");
  const listening = FakePeerConnection.all.at(-1);

  // The host invites this seat: the server re-offers the session with `publish`; a new connection is offered with
  // the send-only transceivers first, and the microphone may go on it.
  ws.serve({ type: "sfu_session", publish: true, audio_slots: 2 });
  await flush();
  assert.ok(listening.closed, "the listening connection is closed (the server closed its SFU session)");
  const speaking = FakePeerConnection.all.at(-1);
  assert.notEqual(speaking, listening);
  assert.deepEqual(speaking.transceivers.map((t) => t.kind + ":" + t.direction), ["audio:sendonly", "video:sendonly", "audio:recvonly", "audio:recvonly", "video:recvonly"]);
  assert.equal(ws.sent.filter((f) => f.type === "sfu_offer").length, 2, "a new first offer");
  assert.equal(await adapter.enableMicrophone(true), true);
  await flush();
  assert.equal(speaking.transceivers[0].sender.track.label, "mic");

  // Taken off the stage: the microphone stops and a receive-only connection replaces the publishing one.
  ws.serve({ type: "sfu_session", publish: false, audio_slots: 2 });
  await flush();
  assert.ok(speaking.closed);
  assert.equal(speaking.transceivers[0].sender.track, null, "the microphone is off the sender");
  assert.deepEqual(FakePeerConnection.all.at(-1).transceivers.map((t) => t.direction), ["recvonly", "recvonly", "recvonly"]);
  assert.deepEqual(told, [false, true, false], "the page is told each decision");
  adapter.disconnect();
});
