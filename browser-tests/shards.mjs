// Shards and the stage in a real browser (issue 24). Driven by gateway/tests/api/browser_shards.rs.
//
// Args (JSON): { base_url, event_id, artifacts_dir, screenshots_dir, host, ann, ben, cat: <session tokens> }
// The event's shards hold two attendees: Ann and Ben land in shard 0, Cat in shard 1; the host is on the stage.
// Result: each page's shard and the remote avatars it sees at each step, the host's move seen in both shards,
// the announcement, Ben's move to Cat's shard, page errors and requests outside the gateway.

import { join } from "node:path";
import { artifactsDir, launch, main, watchPage } from "./lib/browser.mjs";

const TARGET = { x: -1.5, y: 1.6, z: -2.75 };

/** Owners of the remote (non-persistent) avatars a page has. */
function remoteOwners() {
  return Object.values(NAF.entities.entities)
    .filter((el) => el.components.networked && el.components.networked.data.owner !== NAF.clientId && !el.components.networked.data.persistent)
    .map((el) => el.components.networked.data.owner)
    .sort();
}

async function openScene(context, args, name, token) {
  const page = await context.newPage();
  const record = await watchPage(page, name, args.base_url);
  await page.goto(`${args.base_url}/scenes/event.html?event=${args.event_id}#token=${encodeURIComponent(token)}`);
  await page.waitForFunction(() => window.dluxScene && (window.dluxScene.status === "connected" || window.dluxScene.failure), null, {
    timeout: 30000,
  });
  const state = await page.evaluate(() => ({
    status: window.dluxScene.status,
    clientId: window.dluxScene.clientId,
    failure: window.dluxScene.failure,
    shard: NAF.connection.adapter.getShard(),
    stage: NAF.connection.adapter.isOnStage(),
  }));
  if (state.status !== "connected") throw new Error(`${name} did not connect: ${JSON.stringify(state)}`);
  // Announcements are kept as the adapter's event fires.
  await page.evaluate(() => {
    window.announcements = [];
    document.body.addEventListener("dlux-announcement", (e) => window.announcements.push(e.detail.text));
  });
  return { page, record, ...state };
}

/** Waits until a page's remote avatars are exactly `owners`. */
async function seesExactly(scene, owners, timeout = 15000) {
  const want = [...owners].sort();
  await scene.page
    .waitForFunction((w) => {
      const got = Object.values(NAF.entities.entities)
        .filter((el) => el.components.networked && el.components.networked.data.owner !== NAF.clientId && !el.components.networked.data.persistent)
        .map((el) => el.components.networked.data.owner)
        .sort();
      return JSON.stringify(got) === JSON.stringify(w);
    }, want, { timeout })
    .catch(async (e) => {
      throw new Error(`page sees ${JSON.stringify(await scene.page.evaluate(remoteOwners))}, not ${JSON.stringify(want)}: ${e}`);
    });
}

main(async (args, log) => {
  const out = artifactsDir(args.artifacts_dir);
  const started = Date.now();
  const { context, close } = await launch({ media: true });
  try {
    const host = await openScene(context, args, "host", args.host);
    const ann = await openScene(context, args, "ann", args.ann);
    const ben = await openScene(context, args, "ben", args.ben);
    const cat = await openScene(context, args, "cat", args.cat);
    const shards = { host: host.shard, host_on_stage: host.stage, ann: ann.shard, ben: ben.shard, cat: cat.shard };
    log("shards", shards);

    // Shard 0 sees the host and each other; shard 1 sees only the host; the host sees the shard it looks at.
    await seesExactly(ann, [host.clientId, ben.clientId]);
    await seesExactly(ben, [host.clientId, ann.clientId]);
    await seesExactly(cat, [host.clientId]);
    const before = {
      ann: await ann.page.evaluate(remoteOwners),
      cat: await cat.page.evaluate(remoteOwners),
      host: await host.page.evaluate(remoteOwners),
    };

    // The host moves: both shards see the host's avatar where it went.
    const moveStart = Date.now();
    await host.page.evaluate((p) => document.getElementById("player").setAttribute("position", p), TARGET);
    const hostAt = async (scene) => {
      await scene.page.waitForFunction(
        ([owner, t]) =>
          Object.values(NAF.entities.entities).some((el) => {
            if (el.components.networked.data.owner !== owner) return false;
            const p = el.object3D.position;
            return Math.abs(p.x - t.x) < 0.01 && Math.abs(p.y - t.y) < 0.01 && Math.abs(p.z - t.z) < 0.01;
          }),
        [host.clientId, TARGET],
        { timeout: 10000 },
      );
      return Date.now() - moveStart;
    };
    const [annSawMoveMs, catSawMoveMs] = await Promise.all([hostAt(ann), hostAt(cat)]);

    // An announcement from the host reaches both shards.
    await host.page.evaluate(() => NAF.connection.adapter.announce("The show starts now"));
    const announced = async (scene) => {
      await scene.page.waitForFunction(() => window.announcements.includes("The show starts now"), null, { timeout: 10000 });
      return scene.page.evaluate(() => window.announcements);
    };
    const [annAnnouncements, catAnnouncements] = await Promise.all([announced(ann), announced(cat)]);

    // Screenshots of the two shards seeing the same host.
    await ann.page.waitForTimeout(300); // a frame or two after the last move
    if (args.screenshots_dir) {
      await ann.page.screenshot({ path: join(args.screenshots_dir, "shards-shard0.png") });
      await cat.page.screenshot({ path: join(args.screenshots_dir, "shards-shard1.png") });
    }
    await ann.page.screenshot({ path: join(out, "shards-shard0.png") });
    await cat.page.screenshot({ path: join(out, "shards-shard1.png") });

    // Ben moves to the shard with room (Cat's): Ann loses his avatar, Cat gains it, Ben sees Cat and the host.
    await ben.page.evaluate(() => NAF.connection.adapter.switchShard());
    await ben.page.waitForFunction(() => NAF.connection.adapter.getShard() === 1, null, { timeout: 10000 });
    await seesExactly(ann, [host.clientId]);
    await seesExactly(cat, [host.clientId, ben.clientId]);
    await seesExactly(ben, [host.clientId, cat.clientId]);
    const after = {
      ann: await ann.page.evaluate(remoteOwners),
      ben: await ben.page.evaluate(remoteOwners),
      cat: await cat.page.evaluate(remoteOwners),
      ben_shard: await ben.page.evaluate(() => NAF.connection.adapter.getShard()),
    };

    const pages = [host, ann, ben, cat].map((p) => p.record);
    return {
      ids: { host: host.clientId, ann: ann.clientId, ben: ben.clientId, cat: cat.clientId },
      shards,
      before,
      after,
      host_move_seen_ms: { ann: annSawMoveMs, cat: catSawMoveMs },
      announcements: { ann: annAnnouncements, cat: catAnnouncements },
      external_requests: pages.flatMap((p) => p.external),
      page_errors: pages.flatMap((p) => p.errors.map((e) => `${p.name}: ${e}`)),
      elapsed_ms: Date.now() - started,
    };
  } finally {
    await close();
  }
});
