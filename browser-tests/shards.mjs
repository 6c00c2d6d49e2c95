// Shards and the stage in a real browser (issue 24). Driven by gateway/tests/api/browser_shards.rs.
//
// Args (JSON): { base_url, event_id, artifacts_dir, screenshots_dir, host, ann, ben, cat: <session tokens>,
//               creator_session: the creator's dashboard session (as the dashboard keeps it in sessionStorage) }
// The event's shards hold two attendees: Ann and Ben land in shard 0, Cat in shard 1; the host is on the stage.
// Result: each page's shard and the remote avatars it sees at each step, the host's move seen in both shards,
// the announcement, Ben's move to Cat's shard, page errors and requests outside the gateway; then the creator's
// dashboard at a phone's 390×844: the event form's "Avatars per shard" field and the live view's chart of
// attendees per shard (sizes, what sticks out sideways, screenshots in screenshots_dir).

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

/** What sticks out sideways at the page's width (outside `.scroll` boxes), if anything. */
const overflowing = () => {
  const width = document.documentElement.clientWidth;
  const sticking = [...document.querySelectorAll("body *")]
    .filter((el) => el.getBoundingClientRect().right > width + 1 && !el.closest(".scroll"))
    .map((el) => `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}`);
  const page = document.documentElement.scrollWidth > width ? [`page scrolls sideways: ${document.documentElement.scrollWidth} > ${width}`] : [];
  return page.concat(sticking).slice(0, 10);
};

/** The creator's dashboard on a phone while the shards are live: the shard-size field and the per-shard chart. */
async function phoneDashboard(context, args) {
  const page = await context.newPage();
  await page.setViewportSize({ width: 390, height: 844 });
  await page.addInitScript((s) => sessionStorage.setItem("dlux-creator", JSON.stringify(s)), args.creator_session);
  const record = await watchPage(page, "dashboard-phone", args.base_url);
  await page.goto(`${args.base_url}/pages/dashboard.html`);
  const row = `#my-events tr[data-event-id="${args.event_id}"]`;
  await page.waitForSelector(row, { timeout: 15000 });
  const out = {};
  // The event form, filled from the event: the "Avatars per shard" field shows its size and fits the screen.
  await page.click(`${row} [data-action=edit]`);
  const field = await page.locator("#f-shard").boundingBox();
  const label = await page.locator("label[for=f-shard]").boundingBox();
  out.shard_field = {
    value: await page.inputValue("#f-shard"),
    label: await page.textContent("label[for=f-shard]"),
    label_font_px: await page.$eval("label[for=f-shard]", (el) => parseFloat(getComputedStyle(el).fontSize)),
    field: field && { x: field.x, right: field.x + field.width, height: field.height },
    label_right: label && label.x + label.width,
  };
  await page.locator("#f-shard").evaluate((el) => el.scrollIntoView({ block: "center" }));
  out.form_overflow = await page.evaluate(overflowing);
  if (args.screenshots_dir) await page.screenshot({ path: join(args.screenshots_dir, "dashboard-shard-size-phone.png") });
  // The live view: attendees per shard over time, drawn for the column's width so its text keeps 12 px.
  await page.click(`${row} [data-action=watch]`);
  await page.waitForFunction(() => {
    const img = document.querySelector("#shards-chart");
    return img && !img.hidden && img.naturalWidth > 0;
  }, null, { timeout: 15000 });
  const chart = page.locator("#shards-chart");
  await chart.scrollIntoViewIfNeeded();
  out.chart = await page.$eval("#shards-chart", (img) => {
    const r = img.getBoundingClientRect();
    return { natural_width: img.naturalWidth, shown_width: Math.round(r.width), left: r.left, right: r.right, alt: img.alt };
  });
  // The SVG it shows, read back: one line per shard, legend names.
  out.chart_svg = await page.evaluate(async (id) => {
    const s = JSON.parse(sessionStorage.getItem("dlux-creator"));
    const width = Math.round(document.querySelector("#shards-chart").getBoundingClientRect().width);
    const res = await fetch(`/api/events/${id}/charts/shards.svg?width=${width}`, { headers: { authorization: `Bearer ${s.token}` } });
    const text = await res.text();
    return { lines: (text.match(/<path/g) || []).length, legend: [...text.matchAll(/<text[^>]*>(Shard \d+)</g)].map((m) => m[1]) };
  }, args.event_id);
  out.overflow = await page.evaluate(overflowing);
  if (args.screenshots_dir) await chart.screenshot({ path: join(args.screenshots_dir, "dashboard-shards-chart-phone.png") });
  await page.screenshot({ path: join(artifactsDir(args.artifacts_dir), "dashboard-shards-phone.png"), fullPage: true });
  await page.close();
  return { out, record: { ...record, name: "dashboard" } };
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

    const dashboard = args.creator_session ? await phoneDashboard(context, args) : null;

    const pages = [host, ann, ben, cat].map((p) => p.record).concat(dashboard ? [dashboard.record] : []);
    return {
      ids: { host: host.clientId, ann: ann.clientId, ben: ben.clientId, cat: cat.clientId },
      shards,
      before,
      after,
      host_move_seen_ms: { ann: annSawMoveMs, cat: catSawMoveMs },
      announcements: { ann: annAnnouncements, cat: catAnnouncements },
      dashboard: dashboard && dashboard.out,
      external_requests: pages.flatMap((p) => p.external),
      page_errors: pages.flatMap((p) => p.errors.map((e) => `${p.name}: ${e}`)),
      elapsed_ms: Date.now() - started,
    };
  } finally {
    await close();
  }
});
