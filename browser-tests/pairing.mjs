// Sign on your phone, enter on the headset (issue 28). Two Chromium instances, each its own profile: the
// "headset" (1366×900, no wallet at all) and the "phone" (390×844, an injected EIP-1193 wallet and Hive
// Keychain holding real keys). Driven by gateway/tests/api/browser_pages.rs.
//
// Args (JSON): { base_url, artifacts_dir, wallet_key (hex), hive_key (hex), creator,
//               events: { live (the wallet holds a ticket, doors open), early (doors not open yet),
//                         ended (the wallet held a ticket; the event is over) } }
// Progress lines on stdout (the orchestrator answers on stdin):
//   {"step":"expire","code":…}   a pairing the phone has not signed yet   (reply: "ok" once it is expired)
// The last line is the result (lib/browser.mjs). Screenshots go to artifacts_dir as pairing-*.png.

import { join } from "node:path";
import { createInterface } from "node:readline";
import { artifactsDir, launch, main, watchPage } from "./lib/browser.mjs";
import { EIP1193, KEYCHAIN, exposeWallets } from "./lib/wallets.mjs";

const progress = (step, detail = {}) => process.stdout.write(JSON.stringify({ step, ...detail }) + "\n");
const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function reply() {
  const { value, done } = await stdinLines.next();
  if (done) throw new Error("the orchestrator closed stdin");
  return value;
}

main(async (args, log) => {
  const shots = artifactsDir(args.artifacts_dir);
  const shot = (page, name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  const headset = await launch({ media: true, viewport: { width: 1366, height: 900 } });
  const phone = await launch({ viewport: { width: 390, height: 844 } });
  const out = { records: [] };
  try {
    const wallet = await exposeWallets(phone.context, { walletKey: args.wallet_key, hiveKeyHex: args.hive_key, account: args.creator });
    out.wallet = wallet.address;
    const open = async (ctx, name, path, init) => {
      const page = await ctx.context.newPage();
      if (init) await page.addInitScript(init);
      out.records.push(await watchPage(page, name, args.base_url));
      await page.goto(path.startsWith("http") ? path : `${args.base_url}${path}`);
      return page;
    };
    const { live, early } = args.events;

    // --- The headset has no wallet: the browser flow says so and points at the phone.
    const join = await open(headset, "headset-join", `/pages/join.html?event=${live}&chain=eth`);
    await join.click("#sign-join");
    await join.waitForFunction(() => window.dluxJoin.status === "refused");
    out.noWallet = { code: await join.getAttribute("#message", "data-code"), text: await join.textContent("#message") };

    // --- "Sign on my phone": a QR code and a code; the phone opens the link and signs; the headset enters.
    await join.click("#sign-phone");
    await join.waitForFunction(() => window.dluxJoin.pairing && document.querySelector("#pairing .qr").naturalWidth > 0);
    const pairing = await join.evaluate(() => window.dluxJoin.pairing);
    out.pairing = { ...pairing, shown: await join.textContent("#pairing .pair-code"), qr: await join.getAttribute("#pairing .qr", "src") };
    await shot(join, "pairing-headset-waiting");
    const signer = await open(phone, "phone", pairing.link, EIP1193);
    await signer.waitForFunction(() => window.dluxPair.status === "ready" || window.dluxPair.status === "refused");
    out.phoneAsked = await signer.textContent("#request-h");
    await shot(signer, "pairing-phone-ask");
    await signer.click("#sign");
    await signer.waitForFunction(() => window.dluxPair.status === "signed" || window.dluxPair.status === "refused");
    out.phoneSigned = { status: await signer.evaluate(() => window.dluxPair.status), text: await signer.textContent("#message") };
    await shot(signer, "pairing-phone-signed");
    await join.waitForURL(/\/scenes\/event\.html/, { timeout: 15000 });
    await join.waitForFunction(() => window.dluxScene && (window.dluxScene.status === "connected" || window.dluxScene.failure), null, { timeout: 20000 });
    out.scene = await join.evaluate(() => ({ status: window.dluxScene.status, failure: window.dluxScene.failure, wallet: window.ethereum ? "injected" : "none" }));
    await shot(join, "pairing-headset-entered");

    // --- The same link again: refused as used.
    await signer.goto(pairing.link);
    await signer.waitForFunction(() => window.dluxPair.status === "refused");
    out.reused = { code: await signer.getAttribute("#message", "data-code"), text: await signer.textContent("#message") };
    await shot(signer, "pairing-phone-reused");

    // --- An expired code, typed on the phone: refused; the headset is told too.
    const again = await open(headset, "headset-expire", `/pages/join.html?event=${live}&chain=eth`);
    await again.click("#sign-phone");
    await again.waitForFunction(() => window.dluxJoin.pairing);
    const stale = await again.evaluate(() => window.dluxJoin.pairing);
    progress("expire", { code: stale.code });
    await reply();
    await again.waitForFunction(() => window.dluxJoin.status === "refused", null, { timeout: 10000 });
    out.expiredHeadset = { code: await again.getAttribute("#message", "data-code"), text: await again.textContent("#message") };
    const typed = await open(phone, "phone-typed", "/pages/pair.html", EIP1193);
    await typed.fill("#code", `${stale.code.slice(0, 4).toLowerCase()}-${stale.code.slice(4)}`);
    await typed.click("#open-code");
    await typed.waitForFunction(() => window.dluxPair.status === "refused");
    out.expiredPhone = { code: await typed.getAttribute("#message", "data-code"), text: await typed.textContent("#message") };
    await shot(typed, "pairing-phone-expired");

    // --- Doors not open yet: a countdown, and no pairing to find a phone for.
    const soon = await open(headset, "headset-early", `/pages/join.html?event=${early}&chain=eth`);
    await soon.click("#sign-phone");
    await soon.waitForFunction(() => window.dluxJoin.status === "refused");
    await soon.waitForSelector("#countdown:not([hidden])");
    out.early = {
      code: await soon.getAttribute("#message", "data-code"), countdown: await soon.textContent("#countdown"),
      pairingShown: await soon.isVisible("#pairing"),
    };
    // The browser-wallet button meets the same countdown rather than "no wallet".
    await soon.click("#sign-join");
    await soon.waitForFunction(() => window.dluxJoin.status === "refused");
    out.earlyWallet = await soon.getAttribute("#message", "data-code");
    await shot(soon, "pairing-headset-early");

    // --- Rating an ended event from the headset's My tickets: the phone's wallet signs "Rate event …".
    const tickets = await open(headset, "headset-tickets", `/pages/tickets.html?wallet=${wallet.address}&chain=eth`);
    const ended = `#tickets li[data-ticket-id] form.rate`;
    await tickets.waitForSelector(ended);
    out.endedTicket = await tickets.$eval(`#tickets li[data-state=ended]`, (el) => ({ text: el.textContent, join: !!el.querySelector("a.button") }));
    await tickets.selectOption(`${ended} select`, "4");
    await tickets.click(`${ended} button.secondary`);
    await tickets.waitForFunction(() => document.querySelector("#pairing .qr") && document.querySelector("#pairing .qr").naturalWidth > 0);
    const rateLink = await tickets.evaluate(() => document.querySelector("#pairing .qr").alt.replace(/^QR code of the link /, ""));
    const rater = await open(phone, "phone-rate", rateLink, EIP1193);
    await rater.waitForFunction(() => window.dluxPair.status === "ready" || window.dluxPair.status === "refused");
    out.rateAsked = await rater.textContent("#text");
    await rater.click("#sign");
    await rater.waitForFunction(() => window.dluxPair.status === "signed" || window.dluxPair.status === "refused");
    await tickets.waitForFunction(() => window.dluxTickets.rated.length > 0 || document.querySelector("form.rate .message.error"), null, { timeout: 15000 });
    out.rated = { events: await tickets.evaluate(() => window.dluxTickets.rated), text: await tickets.textContent("#tickets") };
    await shot(tickets, "pairing-headset-rated");

    // --- Creator sign-in on a headset: the phone's Keychain signs the sign-in text.
    const dash = await open(headset, "headset-dashboard", "/pages/dashboard.html");
    await dash.fill("#account", args.creator);
    await dash.click("#sign-in-phone");
    await dash.waitForFunction(() => window.dluxDashboard.pairing && document.querySelector("#pairing .qr").naturalWidth > 0);
    const creatorPairing = await dash.evaluate(() => window.dluxDashboard.pairing);
    const keychain = await open(phone, "phone-keychain", creatorPairing.link, KEYCHAIN);
    await keychain.waitForFunction(() => window.dluxPair.status === "ready" || window.dluxPair.status === "refused");
    out.creatorAsked = { heading: await keychain.textContent("#request-h"), text: await keychain.textContent("#text") };
    await keychain.click("#sign");
    await keychain.waitForFunction(() => window.dluxPair.status === "signed" || window.dluxPair.status === "refused");
    out.creatorPhone = await keychain.evaluate(() => window.dluxPair.status);
    await dash.waitForSelector("body[data-signed-in]", { timeout: 15000 });
    out.creatorWho = await dash.textContent("#who");

    out.records = out.records.map((r) => ({ name: r.name, errors: r.errors, external: r.external }));
    return out;
  } finally {
    await headset.close();
    await phone.close();
  }
});
