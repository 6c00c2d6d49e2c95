// networked-aframe over two gateway nodes (cluster mode): each page loads the example scene from its own node and
// joins the room there (`#token=`, so its WebSocket is `/event/<id>` on that node's origin); each sees the other's
// avatar through the cross-node relay, and one page's move reaches the other. Driven by
// gateway/tests/api/browser_cluster.rs.
//
// Args (JSON): { event_id, artifacts_dir, timeout_ms,
//   pages: [{ name, base_url, token }, { name, base_url, token }] }
// Result: per page its status, client id, the remote avatars it saw (owner, position) and how long until it saw
// the other; the move's latency across nodes; what left each page's origin; page errors.

import { join } from "node:path";
import { artifactsDir, launch, main, watchPage } from "./lib/browser.mjs";

const TARGET = { x: -1.5, y: 1.6, z: 2.25 };

function remoteEntities() {
  return Object.values(NAF.entities.entities)
    .filter((el) => el.components.networked && el.components.networked.data.owner !== NAF.clientId && !el.components.networked.data.persistent)
    .map((el) => ({ owner: el.components.networked.data.owner, position: el.object3D.position.toArray() }));
}

async function openScene(context, args, { name, base_url, token }) {
  const page = await context.newPage();
  const record = await watchPage(page, name, base_url);
  await page.goto(`${base_url}/scenes/event.html?event=${args.event_id}#token=${encodeURIComponent(token)}`);
  await page.waitForFunction(() => window.dluxScene && (window.dluxScene.status === "connected" || window.dluxScene.failure), null, {
    timeout: 30000,
  });
  const state = await page.evaluate(() => ({ status: window.dluxScene.status, clientId: window.dluxScene.clientId, failure: window.dluxScene.failure }));
  if (state.status !== "connected") throw new Error(`${name} did not connect: ${JSON.stringify(state)}`);
  return { page, record, state };
}

main(async (args, log) => {
  const out = artifactsDir(args.artifacts_dir);
  const { context, close } = await launch();
  try {
    const [a, b] = await Promise.all(args.pages.map((p) => openScene(context, args, p)));
    log("connected", a.state, b.state);
    const seenBy = async (page, owner) => {
      const t0 = Date.now();
      await page.waitForFunction((o) => Object.values(NAF.entities.entities).some((el) => el.components.networked.data.owner === o), owner, {
        timeout: 15000,
      });
      return Date.now() - t0;
    };
    const [aSeesMs, bSeesMs] = await Promise.all([seenBy(a.page, b.state.clientId), seenBy(b.page, a.state.clientId)]);
    // The first page moves; the second's copy of its avatar follows, across nodes.
    const moveStart = Date.now();
    await a.page.evaluate((p) => document.getElementById("player").setAttribute("position", p), TARGET);
    await b.page.waitForFunction(
      ([owner, t]) =>
        Object.values(NAF.entities.entities).some((el) => {
          if (el.components.networked.data.owner !== owner) return false;
          const p = el.object3D.position;
          return Math.abs(p.x - t.x) < 0.01 && Math.abs(p.y - t.y) < 0.01 && Math.abs(p.z - t.z) < 0.01;
        }),
      [a.state.clientId, TARGET],
      { timeout: 10000 },
    );
    const moveMs = Date.now() - moveStart;
    await b.page.screenshot({ path: join(out, "cluster-second.png") });
    const page = async (p, seesMs) => ({ ...p.state, remote: await p.page.evaluate(remoteEntities), sees_peer_ms: seesMs });
    return {
      first: await page(a, aSeesMs),
      second: await page(b, bSeesMs),
      move_observed_ms: moveMs,
      external_requests: [a, b].flatMap((p) => p.record.external),
      page_errors: [a, b].flatMap((p) => p.record.errors),
    };
  } finally {
    await close();
  }
});
