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
