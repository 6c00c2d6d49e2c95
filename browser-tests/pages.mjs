// The buyer and creator pages (web/pages/) in headless Chromium against the real gateway (issue 13).
// Driven by gateway/tests/api/browser_pages.rs, which seeds the events, reports payments as a watcher would and
// answers this script's progress lines.
//
// Args (JSON): { base_url, artifacts_dir, wallet_key (hex), hive_key (hex), creator,
//               events: { concert, talk }, bob_token (session token of a second ticket holder of the concert) }
// Progress lines on stdout (the orchestrator answers on stdin where noted):
//   {"step":"quote","quote":…}            the checkout shows a quote        (reply: "ok" once a payment is reported)
//   {"step":"status","quote":…}           the page shows a new status       (reply: "ok" after the next report)
//   {"step":"created","event_id":…}       the dashboard created an event    (reply: a session token of a ticket
//                                                                             holder of that event)
// The last line is the result (lib/browser.mjs). Screenshots go to artifacts_dir.

import { join } from "node:path";
import { createInterface } from "node:readline";
import { artifactsDir, launch, main, watchPage } from "./lib/browser.mjs";
import { EIP1193, KEYCHAIN, evmKey, hiveKey } from "./lib/wallets.mjs";

const progress = (step, detail = {}) => process.stdout.write(JSON.stringify({ step, ...detail }) + "\n");
const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function reply() {
  const { value, done } = await stdinLines.next();
  if (done) throw new Error("the orchestrator closed stdin");
  return value;
}

/** Remote NAF avatars a scene page sees. */
const remoteOwners = () =>
  Object.values(NAF.entities.entities)
    .filter((el) => !el.components.networked.data.persistent) // the scene's prop is not an avatar
    .map((el) => el.components.networked.data.owner)
    .filter((o) => o !== NAF.clientId);

/** At a phone's width nothing may stick out sideways: the elements wider than the viewport, if any. */
const overflowing = () => {
  const width = document.documentElement.clientWidth;
  const sticking = [...document.querySelectorAll("body *")]
    .filter((el) => el.getBoundingClientRect().right > width + 1 && !el.closest(".scroll"))
    .map((el) => `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}${el.className ? "." + String(el.className).split(" ").join(".") : ""}`);
  const page = document.documentElement.scrollWidth > width ? [`page scrolls sideways: ${document.documentElement.scrollWidth} > ${width}`] : [];
  return page.concat(sticking).slice(0, 10);
};

main(async (args, log) => {
  const shots = artifactsDir(args.artifacts_dir);
  const shot = async (page, name, fullPage = true) => {
    await page.screenshot({ path: join(shots, `${name}.png`), fullPage });
  };
  const wallet = evmKey(args.wallet_key);
  const signHive = hiveKey(args.hive_key);
  const { context, close } = await launch({ media: true, viewport: { width: 1100, height: 800 } });
  const out = { wallet: wallet.address, records: [] };
  try {
    await context.exposeFunction("__walletAddress", () => wallet.address);
    await context.exposeFunction("__walletSign", (hex) => wallet.sign(hex));
    await context.exposeFunction("__hiveSign", (account, text, keyType) => {
      if (account !== args.creator || keyType !== "Posting") throw new Error(`no ${keyType} key for ${account}`);
      return signHive(text);
    });
    const open = async (name, path, init) => {
      const page = await context.newPage();
      if (init) await page.addInitScript(init);
      page.on("dialog", (d) => d.accept());
      out.records.push(await watchPage(page, name, args.base_url));
      await page.goto(`${args.base_url}${path}`);
      return page;
    };
    const { concert, talk } = args.events;

    // --- Marketplace: both events, then filters and search narrow the list.
    const buyer = await open("buyer", "/pages/index.html", EIP1193);
    await buyer.waitForSelector("body[data-loaded]");
    const cards = () => buyer.$$eval("#events li.card", (els) => els.map((el) => ({
      id: Number(el.dataset.eventId), title: el.querySelector("h2").textContent, seats: el.querySelector(".seats").textContent,
      prices: [...el.querySelectorAll(".prices li")].map((li) => li.textContent),
    })));
    const reload = async () => {
      await buyer.evaluate(() => delete document.body.dataset.loaded);
      await buyer.click("#filters button[type=submit]");
      await buyer.waitForSelector("body[data-loaded]");
      return cards();
    };
    out.market = { all: await cards() };
    // Keyboard: the first Tab reaches the skip link, which moves on to the content.
    await buyer.keyboard.press("Tab");
    out.keyboard = { first: await buyer.evaluate(() => document.activeElement.className) };
    await buyer.keyboard.press("Enter");
    out.keyboard.hash = await buyer.evaluate(() => location.hash);
    await shot(buyer, "pages-marketplace");
    await buyer.fill("#category", "music");
    out.market.music = await reload();
    await buyer.fill("#category", "");
    await buyer.fill("#min-price", "20");
    out.market.pricey = await reload();
    await buyer.fill("#min-price", "");
    await buyer.fill("#q", "lecture");
    out.market.search = await reload();
    await buyer.fill("#q", "");
    await buyer.fill("#creator", "nobody");
    out.market.nobody = await reload();
    out.market.nobodyText = await buyer.textContent("#count");
    await buyer.fill("#creator", "");
    await buyer.selectOption("#status", "live");
    out.market.live = await reload();
    await buyer.selectOption("#status", "all");
    await buyer.setViewportSize({ width: 390, height: 844 });
    await reload();
    out.market.phoneOverflow = await buyer.evaluate(overflowing);
    await shot(buyer, "pages-marketplace-phone");
    await buyer.setViewportSize({ width: 1100, height: 800 });

    // --- Event page and checkout: ETH from the connected wallet, the QR, then the status the watcher drives.
    await buyer.click(`#events li[data-event-id="${concert}"] h2 a`);
    await buyer.waitForSelector("body[data-loaded]");
    out.event = await buyer.evaluate(() => ({
      title: document.querySelector("#title").textContent, requirements: document.querySelector("#requirements").textContent,
      creator: document.querySelector("#creator").textContent, currencies: [...document.querySelectorAll("#currency option")].map((o) => o.value),
    }));
    await buyer.selectOption("#currency", "eth");
    await buyer.click("#connect");
    await buyer.waitForFunction(() => document.querySelector("#wallet").value.startsWith("0x"));
    out.connected = await buyer.inputValue("#wallet");
    await buyer.click("#get-quote");
    await buyer.waitForFunction(() => window.dluxPage.quote && document.querySelector("#qr").complete && document.querySelector("#qr").naturalWidth > 0);
    const quote = await buyer.evaluate(() => window.dluxPage.quote);
    out.checkout = await buyer.evaluate(() => ({
      amount: document.querySelector("#q-amount").textContent, address: document.querySelector("#q-address").textContent,
      countdown: document.querySelector("#q-countdown").textContent, status: document.querySelector("#quote-status").textContent,
      qr: document.querySelector("#qr").getAttribute("src"), qrWidth: document.querySelector("#qr").naturalWidth,
      uri: document.querySelector("#q-uri").getAttribute("href"), hash: location.hash,
    }));
    await shot(buyer, "pages-checkout");
    progress("quote", { quote });
    await reply();
    // Each status the page shows is reported back; the orchestrator then reports the next stage of the payment.
    const seen = [];
    for (const status of ["seen", "confirming", "paid"]) {
      await buyer.waitForFunction((s) => window.dluxPage.quote.status === s, status, { timeout: 15000 });
      const text = await buyer.textContent("#quote-status");
      seen.push({ status, text, data: await buyer.getAttribute("#quote-status", "data-status") });
      if (status === "confirming") await shot(buyer, "pages-checkout-confirming");
      // Once a payment is seen, nothing asks for money again: no QR code, amount, copy buttons or countdown.
      if (status === "seen") out.payBoxWhenSeen = { payBox: await buyer.isVisible("#pay-box"), form: await buyer.isVisible("#get-quote") };
      if (status !== "paid") {
        progress("status", { quote: await buyer.evaluate(() => window.dluxPage.quote) });
        await reply();
      }
    }
    out.statuses = seen;
    await buyer.waitForSelector("#join-link");
    out.paid = await buyer.textContent("#paid");
    // The receipt is where the eye is: scrolled into the window.
    out.receiptOnScreen = await buyer.evaluate(() => {
      const r = document.querySelector("#paid").getBoundingClientRect();
      return r.top >= 0 && r.top < innerHeight && !document.querySelector("#pay-box").checkVisibility();
    });
    await shot(buyer, "pages-paid");

    // --- My tickets, by the wallet.
    const tickets = await open("tickets", `/pages/tickets.html?wallet=${wallet.address}&chain=eth`, EIP1193);
    await tickets.waitForSelector("body[data-loaded]");
    out.tickets = await tickets.$$eval("#tickets li.card", (cards) => cards.map((c) => c.textContent));
    await shot(tickets, "pages-tickets");
    await tickets.close();

    // --- Join refusals: no ticket for the open rehearsal; then the paste flow's challenge text for the talk.
    const refusals = await open("refusals", `/pages/join.html?event=${args.events.rehearsal}&chain=eth&wallet=${wallet.address}`, EIP1193);
    await refusals.click("#sign-join");
    await refusals.waitForFunction(() => window.dluxJoin.status === "refused");
    out.noTicket = { code: await refusals.getAttribute("#message", "data-code"), text: await refusals.textContent("#message") };
    await refusals.fill("#event", String(talk));
    await refusals.click("#paste summary");
    await refusals.fill("#wallet", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4");
    await refusals.selectOption("#chain", "btc");
    await refusals.click("#get-challenge");
    await refusals.waitForSelector("#challenge-box:not([hidden]), #message.error");
    if (await refusals.isVisible("#message.error")) throw new Error(`challenge refused: ${await refusals.textContent("#message")}`);
    out.pasteChallenge = await refusals.textContent("#challenge");
    await shot(refusals, "pages-join-paste");
    await refusals.close();

    // Not live yet: the buyer's ticket for the late show (seeded by the orchestrator) meets a countdown.
    const early = await open("early", `/pages/join.html?event=${args.events.late}&chain=eth&wallet=${wallet.address}`, EIP1193);
    await early.click("#sign-join");
    await early.waitForFunction(() => window.dluxJoin.status === "refused");
    await early.waitForSelector("#countdown:not([hidden])");
    out.notLive = { code: await early.getAttribute("#message", "data-code"), text: await early.textContent("#message"), countdown: await early.textContent("#countdown") };
    await shot(early, "pages-join-not-live");
    await early.close();

    // --- Join: from the paid checkout's link, signed by the wallet; the scene opens and a second ticket holder
    // sees this buyer's avatar.
    await buyer.click("#join-link");
    await buyer.waitForURL(/\/pages\/join\.html/);
    out.joinForm = { event: await buyer.inputValue("#event"), chain: await buyer.inputValue("#chain"), wallet: await buyer.inputValue("#wallet") };
    await shot(buyer, "pages-join");
    await buyer.click("#sign-join");
    await buyer.waitForURL(/\/scenes\/event\.html/, { timeout: 15000 });
    await buyer.waitForFunction(() => window.dluxScene && (window.dluxScene.status === "connected" || window.dluxScene.failure), null, { timeout: 20000 });
    out.scene = await buyer.evaluate(() => ({ status: window.dluxScene.status, clientId: window.dluxScene.clientId, failure: window.dluxScene.failure }));
    const bob = await open("bob", `/scenes/event.html?event=${concert}#token=${encodeURIComponent(args.bob_token)}`);
    await bob.waitForFunction(() => window.dluxScene && window.dluxScene.status === "connected", null, { timeout: 20000 });
    const bobId = await bob.evaluate(() => window.dluxScene.clientId);
    await bob.waitForFunction((o) => Object.values(NAF.entities.entities).some((el) => el.components.networked.data.owner === o), out.scene.clientId, { timeout: 10000 });
    await buyer.waitForFunction((o) => Object.values(NAF.entities.entities).some((el) => el.components.networked.data.owner === o), bobId, { timeout: 10000 });
    out.bobSees = await bob.evaluate(remoteOwners);
    out.buyerSees = await buyer.evaluate(remoteOwners);
    out.bobId = bobId;
    out.sceneButtons = await buyer.$$eval("#controls button", (b) => b.map((x) => x.textContent));
    await shot(buyer, "pages-scene-buyer", false);
    await shot(bob, "pages-scene-bob", false);
    await bob.close();

    // --- Creator: Hive Keychain sign-in, a refused and then an accepted event, the live feed of a join.
    const creator = await open("creator", "/pages/dashboard.html", KEYCHAIN);
    await creator.fill("#account", args.creator);
    await creator.click("#sign-in");
    await creator.waitForSelector("body[data-signed-in]");
    out.who = await creator.textContent("#who");
    await creator.waitForSelector("#my-events tr[data-event-id]");
    out.myEvents = await creator.$$eval("#my-events tr[data-event-id]", (rows) => rows.map((r) => Number(r.dataset.eventId)));
    const local = (ms) => { const d = new Date(ms); return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16); };
    const start = Date.now() + 10 * 60_000;
    await creator.fill("#f-title", "Browser Premiere");
    await creator.fill("#f-description", "Made in the dashboard");
    await creator.fill("#f-category", "music");
    await creator.fill("#f-price", "3");
    await creator.fill("#f-seats", "20");
    await creator.fill("#f-start", local(start));
    await creator.fill("#f-end", local(start - 60 * 60_000)); // ends before it starts: refused
    await creator.click("#save");
    await creator.waitForSelector("#form-message.error");
    out.invalid = {
      code: await creator.getAttribute("#form-message", "data-code"), text: await creator.textContent("#form-message"),
      field: await creator.evaluate(() => document.activeElement.id), ariaInvalid: await creator.getAttribute("#f-end", "aria-invalid"),
    };
    await shot(creator, "pages-dashboard-invalid");
    await creator.fill("#f-end", local(start + 2 * 60 * 60_000));
    await creator.click("#save");
    await creator.waitForSelector("#form-message.ok");
    const created = Number(await creator.getAttribute("#form-message", "data-event-id"));
    await creator.waitForSelector(`#my-events tr[data-event-id="${created}"]`);
    out.created = { id: created, text: await creator.textContent("#form-message") };
    // Edit it: the form fills from the event, and the saved title shows in the list.
    await creator.click(`#my-events tr[data-event-id="${created}"] [data-action=edit]`);
    out.editForm = { title: await creator.inputValue("#f-title"), seats: await creator.inputValue("#f-seats"), heading: await creator.textContent("#form-h") };
    await creator.fill("#f-title", "Browser Premiere (extended)");
    await creator.click("#save");
    await creator.waitForFunction((id) => (document.querySelector(`#my-events tr[data-event-id="${id}"] a`) || {}).textContent === "Browser Premiere (extended)", created);
    out.edited = await creator.textContent(`#my-events tr[data-event-id="${created}"] a`);
    await creator.click(`#my-events tr[data-event-id="${created}"] [data-action=watch]`);
    await creator.waitForFunction(() => document.querySelector("#live-state").dataset.feed === "open");
    progress("created", { event_id: created });
    const carolToken = (await reply()).trim();
    const carol = await open("carol", `/scenes/event.html?event=${created}#token=${encodeURIComponent(carolToken)}`);
    await carol.waitForFunction(() => window.dluxScene && window.dluxScene.status === "connected", null, { timeout: 20000 });
    const carolId = await carol.evaluate(() => window.dluxScene.clientId);
    await creator.waitForFunction((id) => window.dluxDashboard.feed.some((f) => f.kind === "joined" && f.client_id === id), carolId, { timeout: 15000 });
    await creator.waitForSelector(`#attendees tr[data-client-id="${carolId}"]`, { timeout: 10000 });
    out.feed = await creator.evaluate(() => window.dluxDashboard.feed);
    out.attendees = await creator.evaluate(() => window.dluxDashboard.attendees);
    out.feedText = await creator.$$eval("#feed li", (l) => l.map((x) => x.textContent));
    out.carolId = carolId;
    // Moderation from the live view: mute Carol; the room reports it and the list says so.
    await creator.click(`#attendees tr[data-client-id="${carolId}"] [data-action=mute]`);
    await creator.waitForFunction((id) => window.dluxDashboard.feed.some((f) => f.kind === "muted" && f.client_id === id), carolId, { timeout: 10000 });
    await creator.waitForFunction((id) => window.dluxDashboard.attendees.some((a) => a.client_id === id && a.muted), carolId, { timeout: 10000 });
    out.mutedRow = await creator.textContent(`#attendees tr[data-client-id="${carolId}"]`);
    await creator.waitForFunction(() => document.querySelector("#attendance-chart").naturalWidth > 0);
    out.salesChart = await creator.evaluate(() => document.querySelector("#sales-chart").naturalWidth);
    await shot(creator, "pages-dashboard");
    // Cancel the talk from the dashboard (the dialog is accepted).
    await creator.click(`#my-events tr[data-event-id="${talk}"] [data-action=cancel]`);
    await creator.waitForFunction((id) => document.querySelector(`#my-events tr[data-event-id="${id}"] .badge`).textContent === "Cancelled", talk);
    out.cancelled = await creator.textContent(`#my-events tr[data-event-id="${talk}"]`);
    await creator.setViewportSize({ width: 390, height: 844 });
    out.dashboardPhoneOverflow = await creator.evaluate(overflowing);
    await shot(creator, "pages-dashboard-phone");
    await carol.close();
    out.records = out.records.map((r) => ({ name: r.name, errors: r.errors, external: r.external }));
    return out;
  } finally {
    await close();
  }
});
