// Resume after a drop and persistent entities in real browsers (issue 26). Driven by gateway/tests/api/browser_resume.rs.
//
// Args (JSON): { base_url, event_id, artifacts_dir, phase, alice, bob, carol } — session tokens.
//   phase "live": alice (through a TCP proxy run here) and bob see each other; alice moves the scene's persistent
//     prop; the proxy cuts alice's connection (no close frame either way); alice's adapter resumes by itself; bob
//     still sees alice's avatar, now where she moved it after the resume, and never saw her leave; both leave;
//     carol joins and sees the prop where alice left it.
//   phase "restarted": carol (another ticket) joins the restarted gateway and sees the prop.
// Result: timings (cut → resumed, cut → first live frame), what each page saw, page errors.

import net from "node:net";
import { launch, main, watchPage } from "./lib/browser.mjs";

const AVATAR_BEFORE = { x: 1.5, y: 1.6, z: -1 };
const AVATAR_AFTER = { x: -2, y: 1.6, z: 0.5 };
const PROP_AT = { x: 2.25, y: 0.3, z: -4.5 };

/** A TCP proxy to the gateway; `cut()` destroys the connections through it, the listener stays. */
function proxy(target) {
  const { hostname, port } = new URL(target);
  const pairs = new Set();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(Number(port), hostname);
    const pair = [inbound, outbound];
    pairs.add(pair);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
    const forget = () => pairs.delete(pair);
    for (const s of pair) {
      s.on("error", () => {});
      s.on("close", forget);
    }
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        url: `ws://127.0.0.1:${server.address().port}`,
        cut() {
          const n = pairs.size;
          for (const pair of pairs) for (const s of pair) (s.resetAndDestroy ? s.resetAndDestroy() : s.destroy());
          pairs.clear();
          return n;
        },
        close: () => server.close(),
      }),
    ),
  );
}

async function openScene(context, args, name, token, websocketUrl) {
  const page = await context.newPage();
  const record = await watchPage(page, name, args.base_url);
  const join = { websocket_url: websocketUrl || `${args.base_url.replace(/^http/, "ws")}/event/${args.event_id}`, session_token: token };
  await page.addInitScript(
    ([key, value]) => {
      if (!sessionStorage.getItem(key + ":used")) {
        sessionStorage.setItem(key, value);
        sessionStorage.setItem(key + ":used", "1");
      }
      // What the adapter tells the page, timestamped: the test's view of the session.
      window.dluxLog = [];
      for (const name of ["reconnecting", "resumed", "peer-left", "peer-joined", "peer-reconnecting", "peer-resumed", "close"]) {
        document.addEventListener("DOMContentLoaded", () =>
          document.body.addEventListener("dlux-" + name, (e) => window.dluxLog.push({ name, at: Date.now(), detail: e.detail })),
        );
      }
    },
    [`dlux-join:${args.event_id}`, JSON.stringify(join)],
  );
  await page.goto(`${args.base_url}/scenes/event.html?event=${args.event_id}`);
  await page.waitForFunction(() => window.dluxScene && (window.dluxScene.status === "connected" || window.dluxScene.failure), null, { timeout: 30000 });
  const state = await page.evaluate(() => ({ status: window.dluxScene.status, clientId: window.dluxScene.clientId, failure: window.dluxScene.failure }));
  if (state.status !== "connected") throw new Error(`${name} did not connect: ${JSON.stringify(state)}`);
  return { page, record, id: state.clientId };
}

/** Waits until `page` shows `owner`'s avatar at `at`. */
function avatarAt(page, owner, at, timeout = 15000) {
  return page.waitForFunction(
    ([o, t]) =>
      Object.values(NAF.entities.entities).some((el) => {
        const data = el.components.networked.data;
        if (data.owner !== o || data.persistent) return false;
        const p = el.object3D.position;
        return Math.abs(p.x - t.x) < 0.01 && Math.abs(p.y - t.y) < 0.01 && Math.abs(p.z - t.z) < 0.01;
      }),
    [owner, at],
    { timeout },
  );
}

/** Waits until the scene's persistent prop stands at `at` on `page`; returns its owner. */
async function propAt(page, at, timeout = 15000) {
  await page.waitForFunction(
    (t) => {
      const el = document.getElementById("stage-prop");
      const p = el && el.object3D.position;
      return p && Math.abs(p.x - t.x) < 0.01 && Math.abs(p.y - t.y) < 0.01 && Math.abs(p.z - t.z) < 0.01;
    },
    at,
    { timeout },
  );
  return page.evaluate(() => document.getElementById("stage-prop").components.networked.data.owner);
}

async function live(args, context, log) {
  const gate = await proxy(args.base_url);
  try {
    const alice = await openScene(context, args, "alice", args.alice, `${gate.url}/event/${args.event_id}`);
    const bob = await openScene(context, args, "bob", args.bob);
    await alice.page.evaluate((p) => document.getElementById("player").setAttribute("position", p), AVATAR_BEFORE);
    await avatarAt(bob.page, alice.id, AVATAR_BEFORE);
    // Bob's copy of alice's avatar is marked: after the resume it must be the same element (never removed).
    await bob.page.evaluate((o) => {
      const el = Object.values(NAF.entities.entities).find((e) => e.components.networked.data.owner === o && !e.components.networked.data.persistent);
      el.dataset.beforeDrop = "1";
    }, alice.id);
    // Alice places the persistent prop: she takes it over (NAF's rule) and moves it.
    await alice.page.evaluate((p) => {
      const prop = document.getElementById("stage-prop");
      NAF.utils.takeOwnership(prop);
      prop.setAttribute("position", p);
    }, PROP_AT);
    await propAt(bob.page, PROP_AT);

    // The network drops alice's WebSocket: no close frame either way.
    await alice.page.evaluate(() => {
      const a = NAF.connection.adapter;
      const handle = a.handleFrame.bind(a);
      window.firstLiveAfterResume = null;
      let resumedAt = null;
      a.handleFrame = (text) => {
        const type = JSON.parse(text).type;
        handle(text);
        if (type === "resumed") resumedAt = Date.now();
        // The replayed frames follow `resumed` at once; the pong of the clock sync restarted by it is live.
        else if (resumedAt && window.firstLiveAfterResume === null && type === "pong") window.firstLiveAfterResume = Date.now();
      };
    });
    const cutAt = Date.now();
    const cut = gate.cut();
    log("cut", cut, "connection(s)");
    await alice.page.waitForFunction(() => window.dluxLog.some((e) => e.name === "resumed") && window.firstLiveAfterResume, null, { timeout: 10000 });
    const aliceLog = await alice.page.evaluate(() => window.dluxLog);
    const resumedAt = aliceLog.find((e) => e.name === "resumed").at;
    const firstLive = await alice.page.evaluate(() => window.firstLiveAfterResume);
    const aliceIdAfter = await alice.page.evaluate(() => NAF.clientId);

    // Alice moves after the resume: bob sees her avatar — the same element — where she is now.
    await alice.page.evaluate((p) => document.getElementById("player").setAttribute("position", p), AVATAR_AFTER);
    await avatarAt(bob.page, alice.id, AVATAR_AFTER);
    const sameAvatar = await bob.page.evaluate((o) => {
      const el = Object.values(NAF.entities.entities).find((e) => e.components.networked.data.owner === o && !e.components.networked.data.persistent);
      return !!el && el.dataset.beforeDrop === "1";
    }, alice.id);
    const bobLog = await bob.page.evaluate(() => window.dluxLog);

    // Both leave; carol joins an empty room and gets the prop from the gateway alone.
    await alice.page.close();
    await bob.page.close();
    const carol = await openScene(context, args, "carol", args.carol);
    const propOwner = await propAt(carol.page, PROP_AT);
    const pages = [alice, bob, carol].map((p) => p.record);
    return {
      alice_id: alice.id,
      alice_id_after: aliceIdAfter,
      bob_id: bob.id,
      resumed_ms: resumedAt - cutAt,
      first_live_frame_ms: firstLive - cutAt,
      alice_log: aliceLog.map((e) => e.name),
      bob_log: bobLog.map((e) => ({ name: e.name, client_id: e.detail && e.detail.client_id })),
      bob_same_avatar_element: sameAvatar,
      carol_prop_owner: propOwner,
      page_errors: pages.flatMap((p) => p.errors.map((e) => `${p.name}: ${e}`)),
      external_requests: pages.flatMap((p) => p.external),
    };
  } finally {
    gate.close();
  }
}

async function restarted(args, context) {
  const carol = await openScene(context, args, "carol-again", args.carol);
  const propOwner = await propAt(carol.page, PROP_AT);
  return { prop_owner: propOwner, page_errors: carol.record.errors };
}

main(async (args, log) => {
  const started = Date.now();
  const { context, close } = await launch({ media: false });
  try {
    const result = args.phase === "restarted" ? await restarted(args, context) : await live(args, context, log);
    return { ...result, elapsed_ms: Date.now() - started };
  } finally {
    await close();
  }
});
