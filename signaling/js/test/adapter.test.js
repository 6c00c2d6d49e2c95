// Drives the adapter as NAF does, against a fake WebSocket. Run: node --test signaling/js/test/
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

global.WebSocket = FakeSocket;
global.location = { protocol: "https:", host: "gw.example" };
global.NAF = {
  log: { write() {}, warn() {}, error() {} },
  adapters: {
    IS_CONNECTED: "IS_CONNECTED",
    NOT_CONNECTED: "NOT_CONNECTED",
    registered: {},
    register(name, cls) {
      this.registered[name] = cls;
    },
  },
};
const Adapter = require("../naf-dlux-adapter.js");

function connected() {
  const adapter = new Adapter();
  const calls = [];
  adapter.setServerConnectListeners((id) => calls.push(["success", id]), (code, reason) => calls.push(["failure", code, reason]));
  adapter.setRoomOccupantListener((occupants) => {
    calls.push(["occupants", Object.keys(occupants).sort()]);
    // What NAF's NetworkConnection does with an occupant list.
    for (const id of Array.from(adapter.openClients)) if (!(id in occupants)) adapter.closeStreamConnection(id);
    for (const id in occupants) {
      if (adapter.getConnectStatus(id) !== NAF.adapters.IS_CONNECTED && adapter.shouldStartConnectionTo(occupants[id])) {
        adapter.startStreamConnection(id);
      }
    }
  });
  adapter.setDataChannelListeners(
    (id) => calls.push(["open", id]),
    (id) => calls.push(["closed", id]),
    (from, type, data) => calls.push(["message", from, type, data]),
  );
  adapter.setRoom("42");
  adapter.setJoinCredentials({ websocket_url: "/event/42", session_token: "t/k" });
  adapter.connect();
  return { adapter, calls, ws: FakeSocket.last };
}

test("registers as dlux and joins with the token", () => {
  assert.equal(NAF.adapters.registered.dlux, Adapter);
  const { ws } = connected();
  assert.equal(ws.url, "wss://gw.example/event/42?token=t%2Fk&protocol=2");
});

test("welcome, occupants, data and departures reach NAF", () => {
  const { adapter, calls, ws } = connected();
  ws.serve({ type: "welcome", client_id: "me", room_id: 42, joined_at: 5, server_time: Date.now() + 1000,
    occupants: { a: { client_id: "a", identity: "A", role: "attendee", joined_at: 1, mic: false, screen: false, muted: false } } });
  assert.deepEqual(calls.slice(0, 3), [["success", "me"], ["occupants", ["a"]], ["open", "a"]]);
  assert.equal(adapter.getConnectStatus("a"), "IS_CONNECTED");
  assert.ok(Math.abs(adapter.getServerTime() - (Date.now() + 1000)) < 100);
  assert.equal(ws.sent[0].type, "ping");

  ws.serve({ type: "broadcast", from: "a", data_type: "u", data: { networkId: "n" } });
  assert.deepEqual(calls.at(-1), ["message", "a", "u", { networkId: "n" }]);

  adapter.sendData("a", "u", { x: 1 });
  adapter.broadcastDataGuaranteed("r", { networkId: "n" });
  assert.deepEqual(ws.sent.slice(-2), [
    { type: "send", to: "a", data_type: "u", data: { x: 1 }, guaranteed: false },
    { type: "broadcast", data_type: "r", data: { networkId: "n" }, guaranteed: true },
  ]);

  ws.serve({ type: "peer_left", client_id: "a", reason: "left" });
  assert.deepEqual(calls.slice(-2), [["occupants", []], ["closed", "a"]]);
  assert.equal(calls.filter((c) => c[0] === "closed").length, 1);
  assert.equal(adapter.getConnectStatus("a"), "NOT_CONNECTED");
  adapter.disconnect();
});

test("a rejection reaches the failure listener with code and reason", () => {
  const { calls, ws } = connected();
  ws.onclose({ code: 4409, reason: "room full" });
  assert.deepEqual(calls.at(-1), ["failure", 4409, "room full"]);
});

test("chat goes out and comes back through the hook", () => {
  const { adapter, ws } = connected();
  const got = [];
  adapter.onChat = (m) => got.push(m.text);
  ws.serve({ type: "welcome", client_id: "me", room_id: 42, joined_at: 5, server_time: Date.now(), occupants: {} });
  adapter.sendChat("hi");
  assert.deepEqual(ws.sent.at(-1), { type: "chat", text: "hi" });
  ws.serve({ type: "chat", from: "a", identity: "A", text: "hello", server_time: 1 });
  assert.deepEqual(got, ["hello"]);
  adapter.disconnect();
});

test("a serverURL that is only the gateway's origin gets the room's path", () => {
  for (const [serverUrl, expected] of [
    ["https://gw.example", "wss://gw.example/event/42"],
    ["https://gw.example/", "wss://gw.example/event/42"],
    ["wss://gw.example:8443", "wss://gw.example:8443/event/42"],
    ["http://127.0.0.1:8080/", "ws://127.0.0.1:8080/event/42"],
    ["wss://gw.example/event/42", "wss://gw.example/event/42"],
    ["/event/42", "wss://gw.example/event/42"],
  ]) {
    const adapter = new Adapter();
    adapter.setServerConnectListeners(() => {}, () => {});
    adapter.setRoom("42");
    adapter.setServerUrl(serverUrl);
    adapter.setJoinCredentials({ session_token: "t" });
    adapter.connect();
    assert.equal(FakeSocket.last.url, expected + "?token=t&protocol=2", serverUrl);
  }
});

test("what NAF sends before the welcome goes out after it, in order", () => {
  const { adapter, ws } = connected();
  adapter.broadcastDataGuaranteed("u", { networkId: "first" });
  adapter.broadcastData("um", { d: [1] });
  assert.deepEqual(ws.sent, [], "nothing goes out before the server seats us");
  ws.serve({ type: "welcome", client_id: "me", room_id: 42, joined_at: 5, server_time: Date.now(), occupants: {} });
  const relayed = ws.sent.filter((f) => f.type === "broadcast");
  assert.deepEqual(relayed.map((f) => [f.data_type, f.guaranteed]), [["u", true], ["um", false]]);
  assert.equal(relayed[0].data.networkId, "first");
  adapter.disconnect();
});

/* ---- Resuming after a drop (issue 26) ---- */

function welcomed(extra) {
  const session = connected();
  session.ws.serve(Object.assign({ type: "welcome", client_id: "me", room_id: 42, joined_at: 5, server_time: Date.now(), resume_token: "rt1",
    occupants: { a: { client_id: "a", identity: "A", role: "attendee", joined_at: 1, mic: false, screen: false, muted: false } } }, extra || {}));
  return session;
}

test("a drop resumes at once with the token and the count read, and NAF sees no departure", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { adapter, calls, ws } = welcomed();
  const events = [];
  adapter.onReconnecting = (d) => events.push(["reconnecting", d.code]);
  adapter.onResumed = (d) => events.push(["resumed", d.resent]);
  ws.serve({ type: "broadcast", from: "a", data_type: "u", data: { networkId: "n" } });
  adapter.broadcastDataGuaranteed("u", { networkId: "mine", n: 1 }); // sent, then lost in flight
  adapter.broadcastDataGuaranteed("u", { networkId: "mine", n: 2 }); // sent, then lost in flight
  const before = calls.length;
  ws.readyState = 3;
  ws.onclose({ code: 1006, reason: "" });
  assert.deepEqual(events, [["reconnecting", 1006]]);
  assert.equal(adapter.getConnectStatus("a"), "IS_CONNECTED", "peers stay open for NAF");
  // While away: guaranteed frames wait, position updates are dropped.
  adapter.broadcastData("um", { d: [] });
  adapter.sendChat("while away");
  t.mock.timers.tick(0);
  const again = FakeSocket.last;
  assert.notEqual(again, ws);
  // welcome, the broadcast: two frames read; no token in the URL, the resume token instead.
  assert.equal(again.url, "wss://gw.example/event/42?protocol=2&resume=rt1&received=2");
  assert.deepEqual(again.sent, [], "nothing before the server says resumed");
  // The server applied the first of the two broadcasts (and the ping before them): the second goes again.
  again.serve({ type: "resumed", client_id: "me", resume_token: "rt2", server_time: Date.now(), received: ws.sent.length - 1, replayed: 1 });
  assert.deepEqual(again.sent.map((f) => f.type + ":" + (f.data ? f.data.n : f.text)), ["broadcast:2", "chat:while away", "ping:undefined"]);
  assert.deepEqual(events.at(-1), ["resumed", 1]);
  again.serve({ type: "chat", from: "a", identity: "A", text: "replayed", server_time: 1 });
  // NAF never heard of a departure or a new connection.
  assert.ok(calls.slice(before).every((c) => c[0] !== "closed" && c[0] !== "success" && c[0] !== "failure"), JSON.stringify(calls.slice(before)));
  // The next drop uses the new token and the count so far (resumed + chat = 4 read in all).
  again.readyState = 3;
  again.onclose({ code: 1006, reason: "" });
  t.mock.timers.tick(0);
  assert.equal(FakeSocket.last.url, "wss://gw.example/event/42?protocol=2&resume=rt2&received=4");
  adapter.disconnect();
});

test("a failed attempt backs off with jitter, and disconnect stops it", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { adapter, ws } = welcomed();
  ws.readyState = 3;
  ws.onclose({ code: 1006, reason: "" });
  t.mock.timers.tick(0);
  const attempts = [FakeSocket.last];
  // The server is unreachable: each try fails; the waits grow (with jitter, between half and all of 250, 500 ms …).
  FakeSocket.last.readyState = 3;
  FakeSocket.last.onclose({ code: 1006, reason: "" });
  t.mock.timers.tick(124);
  assert.equal(FakeSocket.last, attempts[0], "not before half the backoff");
  t.mock.timers.tick(126);
  assert.notEqual(FakeSocket.last, attempts[0], "by the full backoff");
  attempts.push(FakeSocket.last);
  FakeSocket.last.readyState = 3;
  FakeSocket.last.onclose({ code: 1006, reason: "" });
  t.mock.timers.tick(249);
  assert.equal(FakeSocket.last, attempts[1]);
  adapter.disconnect();
  t.mock.timers.tick(10000);
  assert.equal(FakeSocket.last, attempts[1], "no attempt after disconnect()");
});

test("a refused resume asks the page for fresh credentials and joins again, keeping its entities", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { adapter, calls, ws } = welcomed();
  const asked = [];
  adapter.onCredentialsNeeded = (detail) => {
    asked.push(detail.code);
    return Promise.resolve({ websocket_url: "/event/42", session_token: "fresh" });
  };
  const box = { attrs: { owner: "me", creator: "me" }, getAttribute() { return this.attrs; }, setAttribute(_, v) { Object.assign(this.attrs, v); } };
  NAF.entities = { entities: { box } };
  ws.readyState = 3;
  ws.onclose({ code: 1006, reason: "" });
  t.mock.timers.tick(0);
  FakeSocket.last.onclose({ code: 4401, reason: "resume refused: the session is over" });
  assert.deepEqual(calls.filter((c) => c[0] === "closed"), [["closed", "a"]], "the old session's peers are gone");
  t.mock.timers.tick(0);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(asked, [4401]);
  const fresh = FakeSocket.last;
  assert.equal(fresh.url, "wss://gw.example/event/42?token=fresh&protocol=2");
  fresh.serve({ type: "welcome", client_id: "me2", room_id: 42, joined_at: 9, server_time: Date.now(), resume_token: "rt9", occupants: {} });
  assert.deepEqual(calls.filter((c) => c[0] === "success").map((c) => c[1]), ["me", "me2"]);
  assert.deepEqual(box.attrs, { owner: "me2", creator: "me2" }, "what this page owned is still its own");
  delete NAF.entities;
  adapter.disconnect();
});

test("without the hook, or when superseded, the failure reaches NAF as before", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { calls, ws } = welcomed();
  ws.readyState = 3;
  ws.onclose({ code: 1006, reason: "" });
  t.mock.timers.tick(0);
  FakeSocket.last.onclose({ code: 4401, reason: "resume refused: the session is over" });
  assert.deepEqual(calls.at(-1), ["failure", 4401, "resume refused: the session is over"]);
  const other = welcomed();
  other.ws.onclose({ code: 4000, reason: "superseded" });
  assert.deepEqual(other.calls.at(-1), ["failure", 4000, "superseded"]);
});

test("a snapshot reaches NAF as first syncs from the entities' owners, and peers' reconnecting states are told", () => {
  const { adapter, calls, ws } = welcomed();
  const states = [];
  adapter.onPeerReconnecting = (m) => states.push(["away", m.client_id]);
  adapter.onPeerResumed = (m) => states.push(["back", m.client_id]);
  ws.serve({ type: "snapshot", entities: [{ networkId: "box", owner: "gone", persistent: true, isFirstSync: true, components: {} }] });
  assert.deepEqual(calls.at(-1), ["message", "gone", "u", { networkId: "box", owner: "gone", persistent: true, isFirstSync: true, components: {} }]);
  ws.serve({ type: "peer_reconnecting", client_id: "a", since: 1, until: 2 });
  assert.equal(adapter.getConnectStatus("a"), "IS_CONNECTED", "a reconnecting peer stays");
  ws.serve({ type: "peer_resumed", client_id: "a" });
  assert.deepEqual(states, [["away", "a"], ["back", "a"]]);
  adapter.disconnect();
});

test("past the welcome's resume window the adapter stops resuming and reports the loss", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: Date.now() });
  const { adapter, calls, ws } = welcomed({ resume_window_secs: 1 });
  assert.equal(adapter.resumeWindowMs, 1000);
  ws.readyState = 3;
  ws.onclose({ code: 1006, reason: "" });
  // The gateway is unreachable: every attempt fails, with growing waits, until the window has passed.
  let attempts = 0;
  for (let waited = 0; waited <= 10000 && !calls.some((c) => c[0] === "failure"); waited += 50) {
    t.mock.timers.tick(50);
    const socket = FakeSocket.last;
    if (socket !== ws && !socket.failed) {
      attempts++;
      socket.failed = true;
      socket.readyState = 3;
      socket.onclose({ code: 1006, reason: "" });
    }
  }
  assert.ok(attempts >= 3, `retried with backoff (${attempts} attempts)`);
  assert.deepEqual(calls.at(-1), ["failure", 4401, "resume window passed"]);
  assert.deepEqual(calls.filter((c) => c[0] === "closed"), [["closed", "a"]], "the lost session's peers are gone");
});
/* ---- batched frames (protocol 2) ---- */

test("the frames of a batch reach NAF in order, as if each had come alone", () => {
  const { adapter, calls, ws } = connected();
  ws.serve({ type: "welcome", client_id: "me", room_id: 42, joined_at: 5, server_time: Date.now(), occupants: {} });
  calls.length = 0;
  ws.serve({
    type: "batch",
    frames: [
      { type: "peer_joined", client_id: "b", identity: "B", role: "attendee", joined_at: 6, mic: false, screen: false, muted: false },
      { type: "broadcast", from: "b", data_type: "u", data: { networkId: "n", seq: 1 } },
      { type: "send", from: "b", data_type: "um", data: { seq: 2 } },
      { type: "broadcast", from: "b", data_type: "r", data: { networkId: "n" } },
      { type: "peer_left", client_id: "b", reason: "left" },
    ],
  });
  assert.deepEqual(calls, [
    ["occupants", ["b"]],
    ["open", "b"],
    ["message", "b", "u", { networkId: "n", seq: 1 }],
    ["message", "b", "um", { seq: 2 }],
    ["message", "b", "r", { networkId: "n" }],
    ["occupants", []],
    ["closed", "b"],
  ]);
  adapter.disconnect();
});

test("a batched frame that fails does not cost the frames after it", () => {
  const { adapter, ws } = connected();
  const got = [];
  adapter.setDataChannelListeners(() => {}, () => {}, (from, type, data) => {
    if (data.boom) throw new Error("listener failed");
    got.push(data.seq);
  });
  ws.serve({ type: "welcome", client_id: "me", room_id: 42, joined_at: 5, server_time: Date.now(), occupants: {} });
  ws.serve({
    type: "batch",
    frames: [
      { type: "broadcast", from: "a", data_type: "u", data: { seq: 1 } },
      { type: "broadcast", from: "a", data_type: "u", data: { boom: true } },
      null,
      { type: "batch", frames: [{ type: "broadcast", from: "a", data_type: "u", data: { seq: 99 } }] },
      { type: "broadcast", from: "a", data_type: "u", data: { seq: 2 } },
    ],
  });
  assert.deepEqual(got, [1, 2], "in order; the failing, empty and nested frames are skipped");
  ws.serve({ type: "batch" });
  ws.serve({ type: "broadcast", from: "a", data_type: "u", data: { seq: 3 } });
  assert.deepEqual(got, [1, 2, 3], "a batch without frames is nothing");
  adapter.disconnect();
});

test("a welcome that comes first in a batch seats the adapter before the frames after it", () => {
  const { adapter, calls, ws } = connected();
  ws.serve({
    type: "batch",
    frames: [
      { type: "welcome", client_id: "me", room_id: 42, joined_at: 5, server_time: Date.now(), occupants: {} },
      { type: "peer_joined", client_id: "c", identity: "C", role: "attendee", joined_at: 7, mic: false, screen: false, muted: false },
      { type: "broadcast", from: "c", data_type: "u", data: { networkId: "z" } },
    ],
  });
  assert.deepEqual(calls, [["success", "me"], ["occupants", []], ["occupants", ["c"]], ["open", "c"], ["message", "c", "u", { networkId: "z" }]]);
  adapter.disconnect();
});
