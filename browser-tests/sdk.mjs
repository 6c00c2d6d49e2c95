// The web client (`/sdk/events.js`) in a real browser against a running gateway: every call, with a test
// EIP-1193 wallet that signs with a real secp256k1 key, and the refusals a page must be able to tell apart.
//
// Run by gateway/tests/api/browser_sdk.rs:  node browser-tests/sdk.mjs '<json args>'
//   args: { base_url, scenario: "buy_and_join" | "expiry" | "cross_origin", wallet_key (hex), web_dir, events: {...},
//           allowed_page, foreign_page (cross_origin: the two other origins the test pages are served from) }
// While it runs, the script prints progress lines `{"step": ...}` on stdout (the quote it made, each update the
// page saw) so the orchestrator can report payments as a watcher would; in the expiry scenario it then waits for
// one line on stdin ("paid late") before watching again. The last stdout line is the result (lib/browser.mjs).

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import * as secp from "@noble/secp256k1";
import { hmac } from "@noble/hashes/hmac";
import { sha256 } from "@noble/hashes/sha256";
import { keccak_256 } from "@noble/hashes/sha3";
import { bytesToHex, hexToBytes, utf8ToBytes, concatBytes } from "@noble/hashes/utils";
import { launch, main, watchPage } from "./lib/browser.mjs";

secp.etc.hmacSha256Sync = (key, ...messages) => hmac(sha256, key, secp.etc.concatBytes(...messages));

const progress = (step, detail = {}) => process.stdout.write(JSON.stringify({ step, ...detail }) + "\n");

/** The orchestrator's next stdin line. */
const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function nextStdinLine() {
  const { value, done } = await stdinLines.next();
  if (done) throw new Error("the orchestrator closed stdin");
  return value;
}

/** An Ethereum key signing as `personal_sign` does (EIP-191), in the node driver. */
function evmKey(keyHex) {
  const secret = hexToBytes(keyHex.replace(/^0x/, ""));
  const publicKey = secp.getPublicKey(secret, false);
  const address = "0x" + bytesToHex(keccak_256(publicKey.slice(1)).slice(-20));
  const sign = (hexMessage) => {
    const message = hexToBytes(hexMessage.replace(/^0x/, ""));
    const digest = keccak_256(concatBytes(utf8ToBytes(`\x19Ethereum Signed Message:\n${message.length}`), message));
    const signature = secp.sign(digest, secret);
    return "0x" + signature.toCompactHex() + (27 + signature.recovery).toString(16);
  };
  return { address, sign };
}

/** window.ethereum for the page: EIP-1193 `request`, backed by functions the driver exposes. */
const TEST_WALLET = `
  window.ethereum = {
    isTestWallet: true,
    async request({ method, params }) {
      const address = await window.__testWalletAddress();
      if (method === "eth_requestAccounts" || method === "eth_accounts") return [address];
      if (method === "personal_sign") {
        if (String(params[1]).toLowerCase() !== address.toLowerCase()) {
          throw Object.assign(new Error("unknown account"), { code: 4100 });
        }
        return window.__testWalletSign(params[0]);
      }
      throw Object.assign(new Error("unsupported method " + method), { code: 4200 });
    },
  };
`;

/** The test page: A-Frame, NAF and the adapter as an event page loads them, and the SDK from the gateway. */
const PAGE = `<!DOCTYPE html>
<html><head><meta charset="utf-8">
<script src="/vendor/aframe/aframe-v1.7.1.min.js"></script>
<script src="/vendor/networked-aframe/networked-aframe.min.js"></script>
<script src="/naf-dlux-adapter.js"></script>
<script type="module">
  import * as dlux from "/sdk/events.js";
  window.dlux = dlux;
  window.sdkLoaded = true;
</script>
</head><body>
<a-scene networked-scene="adapter: dlux; connectOnLoad: false" vr-mode-ui="enabled: false" loading-screen="enabled: false" embedded>
  <a-sky color="#1b1f3a"></a-sky>
</a-scene>
</body></html>`;

/** Opens the test page on the gateway's origin; vendored A-Frame and NAF come from web/vendor on disk. */
async function openPage(context, args, name, initScript) {
  const page = await context.newPage();
  if (initScript) await page.addInitScript(initScript);
  const record = await watchPage(page, name, args.base_url);
  await page.route(`${args.base_url}/vendor/**`, (route) => {
    const path = new URL(route.request().url()).pathname;
    return route.fulfill({ contentType: "text/javascript", body: readFileSync(join(args.web_dir, path)) });
  });
  await page.route(`${args.base_url}/__sdk_test.html`, (route) => route.fulfill({ contentType: "text/html", body: PAGE }));
  await page.goto(`${args.base_url}/__sdk_test.html`);
  await page.waitForFunction(() => window.sdkLoaded === true && window.NAF && window.AFRAME, null, { timeout: 20000 });
  return { page, record };
}

/** Runs `fn` in the page; an error thrown there comes back as `{ thrown: { name, code, status, message, ... } }`. */
const CATCH = `
  window.caught = async (promise) => {
    try {
      return { value: await promise };
    } catch (e) {
      return { thrown: { name: e.name, code: e.code, status: e.status, message: e.message, missing: e.missing,
        isApiError: e instanceof window.dlux.DluxApiError, isWalletError: e instanceof window.dlux.DluxWalletError } };
    }
  };
`;

async function buyAndJoin(args, log, context) {
  const wallet = evmKey(args.wallet_key);
  await context.exposeFunction("__testWalletAddress", () => wallet.address);
  await context.exposeFunction("__testWalletSign", (hexMessage) => wallet.sign(hexMessage));
  await context.exposeFunction("__quoteUpdate", (quote) => progress("update", { quote }));
  const { page, record } = await openPage(context, args, "sdk", TEST_WALLET);
  await page.evaluate(CATCH);
  const { concert, talk } = args.events;
  const out = { wallet: wallet.address, record };

  log("sdk: discovery");
  // Discovery: the marketplace with each filter, one event, a creator.
  out.listing = await page.evaluate(async ({ concert, talk }) => {
    const ids = (page) => page.items.map((e) => e.id);
    const all = await dlux.getAvailableEvents({ upcoming: true, limit: 20 });
    const music = await dlux.getAvailableEvents({ category: "music" });
    const pricey = await dlux.getAvailableEvents({ minPrice: "10", maxPrice: "100" });
    const cheap = await dlux.getAvailableEvents({ maxPrice: 10 });
    const later = await dlux.getAvailableEvents({ from: new Date(Date.now() + 36 * 3600e3), to: new Date(Date.now() + 72 * 3600e3) });
    const first = await dlux.getAvailableEvents({ limit: 1 });
    const second = await dlux.getAvailableEvents({ limit: 1, cursor: first.next_cursor });
    const live = await dlux.getAvailableEvents({ upcoming: false });
    const bad = await caught(dlux.getAvailableEvents({ limit: 1000 }));
    const event = await dlux.getEvent(concert);
    const missing = await caught(dlux.getEvent(987654));
    const creator = await dlux.getCreator("alice");
    return { all: ids(all), music: ids(music), pricey: ids(pricey), cheap: ids(cheap), later: ids(later),
      first: ids(first), second: ids(second), live: ids(live), cursor: first.next_cursor, bad: bad.thrown,
      event: { id: event.id, title: event.title, seats_left: event.seats_left, category: event.category },
      missing: missing.thrown, creator: { account: creator.account } };
  }, { concert, talk });

  log("sdk: buying");
  // Buying: the quote, then its progress over SSE while the orchestrator reports the payment.
  const quote = await page.evaluate(async (concert) => {
    const address = await dlux.getWalletAddress("ethereum");
    return dlux.purchaseEventTicket(concert, "eth", address);
  }, concert);
  out.quote = quote;
  progress("quote", { quote });
  out.watched = await page.evaluate(async (id) => {
    const updates = [];
    const watch = dlux.watchQuote(id, (q) => {
      updates.push({ status: q.status, confirmations: q.confirmations, progress: q.progress, ticket: q.ticket });
      window.__quoteUpdate(q);
    });
    const final = await watch.done;
    return { updates, final };
  }, quote.quote_id);

  log("sdk: refusals");
  // Refusals: the last seat is gone; an unknown quote's stream.
  out.sold_out = await page.evaluate(async (concert) => (await caught(dlux.purchaseEventTicket(concert, "eth", await dlux.getWalletAddress("eth")))).thrown, concert);
  out.unknown_quote = await page.evaluate(async () => (await caught(dlux.watchQuote("no-such-quote", () => {}).done)).thrown);

  log("sdk: entering");
  // Entering: challenge, signature by the wallet, join; a signature over another message is refused.
  out.join = await page.evaluate(async (concert) => {
    const address = await dlux.getWalletAddress("eth");
    const challenge = await dlux.getChallenge(concert, "ethereum", address);
    const signed = await dlux.signWithWallet(challenge.message, "ethereum");
    const other = await dlux.getChallenge(concert, "eth", address);
    const bad = await caught(dlux.joinEvent(concert, address, signed.signature, { chain: "eth", message: other.message }));
    const join = await dlux.joinEvent(concert, signed.address, signed.signature, { chain: signed.chain, message: signed.message });
    const replayed = await caught(dlux.joinEvent(concert, signed.address, signed.signature, { chain: signed.chain, message: signed.message }));
    // The natural call: what signWithWallet returned, over the seed's message, passed as it is.
    const natural = await caught(dlux.joinEvent(concert, address, await dlux.signWithWallet(`Access event ${concert} at ${Date.now()}`, "ethereum")));
    return { challenge, signed, bad: bad.thrown, join, replayed: replayed.thrown, natural: natural.thrown || natural.value };
  }, concert);

  log("sdk: into the scene");
  // Into the scene: NAF connects through the dlux adapter with the join's credentials.
  out.scene = await page.evaluate(async (join) => {
    const closes = [];
    document.body.addEventListener("dlux-close", (e) => closes.push(e.detail));
    const scene = document.querySelector("a-scene");
    if (!scene.hasLoaded) await new Promise((r) => scene.addEventListener("loaded", r, { once: true }));
    const connected = await Promise.race([
      dlux.connectScene(scene, join),
      new Promise((_, reject) => setTimeout(() => reject(new Error("NAF did not connect in 10 s")), 10000)),
    ]).catch((e) => { throw new Error(e.message + " " + JSON.stringify(closes)); });
    const adapter = NAF.connection.adapter;
    return { clientId: connected.clientId, nafClientId: NAF.clientId, isDlux: adapter instanceof window.DluxAdapter,
      room: scene.getAttribute("networked-scene").room, connected: NAF.connection.isConnected() };
  }, out.join.join);

  log("sdk: a page with no wallet");
  // A page with no wallet at all: each chain's error names what is missing.
  const { page: noWallet, record: bareRecord } = await openPage(context, args, "no-wallet");
  await noWallet.evaluate(CATCH);
  out.bare_record = bareRecord;
  out.no_wallet = await noWallet.evaluate(async () => ({
    eth: (await caught(dlux.signWithWallet("hello", "ethereum"))).thrown,
    sol: (await caught(dlux.signWithWallet("hello", "solana"))).thrown,
    hive: (await caught(dlux.signWithWallet("hello", "hive", { account: "bob" }))).thrown,
    address: (await caught(dlux.getWalletAddress("polygon"))).thrown,
    chain: (await caught(dlux.signWithWallet("hello", "dogecoin"))).thrown,
    btc_sign: (await caught(dlux.signWithWallet("hello", "bitcoin"))).thrown,
  }));
  // Bitcoin and Monero have no browser wallet, but their challenge and join go through the client all the same.
  out.btc_challenge = await noWallet.evaluate(
    async ({ concert, wallet }) => dlux.getChallenge(concert, "bitcoin", wallet),
    { concert: args.events.concert, wallet: "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu" },
  );
  return out;
}

/** A scene page on another origin: everything from the gateway by absolute URL, the adapter and SDK with CORS. */
const crossOriginPage = (base) => `<!DOCTYPE html>
<html><head><meta charset="utf-8">
<script src="${base}/vendor/aframe/aframe-v1.7.1.min.js"></script>
<script src="${base}/vendor/networked-aframe/networked-aframe.min.js"></script>
<script src="${base}/naf-dlux-adapter.js" crossorigin="anonymous"></script>
<script type="module">
  import * as dlux from "${base}/sdk/events.js";
  window.dlux = dlux;
  window.sdkLoaded = true;
</script>
</head><body>
<a-scene networked-scene="adapter: dlux; connectOnLoad: false" vr-mode-ui="enabled: false" loading-screen="enabled: false" embedded>
  <a-sky color="#1b1f3a"></a-sky>
</a-scene>
</body></html>`;

/** A page on an origin the gateway does not list: plain fetches and a WebSocket, each expected to fail. */
const FOREIGN_PAGE = `<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>foreign</body></html>`;

/**
 * Challenge → join → room from a page on an allowed other origin, through the SDK and the adapter; then the same
 * calls from a page on a foreign origin, refused at preflight (and unreadable for a simple GET) and at the
 * WebSocket.
 */
async function crossOrigin(args, log, context) {
  const wallet = evmKey(args.wallet_key);
  await context.exposeFunction("__testWalletAddress", () => wallet.address);
  await context.exposeFunction("__testWalletSign", (hexMessage) => wallet.sign(hexMessage));
  const base = args.base_url;
  const out = { wallet: wallet.address };

  log("cross-origin: an allowed origin");
  const page = await context.newPage();
  await page.addInitScript(TEST_WALLET);
  out.record = await watchPage(page, "cross-origin", base);
  await page.route(`${args.allowed_page}/scene.html`, (route) => route.fulfill({ contentType: "text/html", body: crossOriginPage(base) }));
  await page.goto(`${args.allowed_page}/scene.html`);
  await page.waitForFunction(() => window.sdkLoaded === true && window.NAF && window.AFRAME && window.DluxAdapter, null, { timeout: 20000 });
  out.allowed = await page.evaluate(async ({ live }) => {
    const closes = [];
    document.body.addEventListener("dlux-close", (e) => closes.push(e.detail));
    const address = await dlux.getWalletAddress("ethereum");
    const challenge = await dlux.getChallenge(live, "ethereum", address);
    const signed = await dlux.signWithWallet(challenge.message, "ethereum");
    const join = await dlux.joinEvent(live, signed.address, signed.signature, { chain: signed.chain, message: signed.message });
    const scene = document.querySelector("a-scene");
    if (!scene.hasLoaded) await new Promise((r) => scene.addEventListener("loaded", r, { once: true }));
    const connected = await Promise.race([
      dlux.connectScene(scene, join),
      new Promise((_, reject) => setTimeout(() => reject(new Error("NAF did not connect in 10 s " + JSON.stringify(closes))), 10000)),
    ]);
    return { origin: location.origin, base: new URL(join.websocket_url).host, role: join.role, clientId: connected.clientId,
      connected: NAF.connection.isConnected(), isDlux: NAF.connection.adapter instanceof window.DluxAdapter };
  }, args.events);

  log("cross-origin: a foreign origin");
  const foreign = await context.newPage();
  out.foreign_record = await watchPage(foreign, "foreign", base);
  await foreign.route(`${args.foreign_page}/scene.html`, (route) => route.fulfill({ contentType: "text/html", body: FOREIGN_PAGE }));
  await foreign.goto(`${args.foreign_page}/scene.html`);
  out.foreign = await foreign.evaluate(async ({ base, live, websocketUrl }) => {
    const attempt = async (url, init) => {
      try {
        const res = await fetch(url, init);
        return { status: res.status };
      } catch (e) {
        return { error: e.name };
      }
    };
    const read = await attempt(`${base}/api/events/${live}`);
    const join = await attempt(`${base}/api/events/${live}/join`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ wallet_address: "0x0", signature: "0x0" }),
    });
    const socket = await new Promise((resolve) => {
      const ws = new WebSocket(websocketUrl);
      let opened = false;
      ws.onopen = () => { opened = true; };
      ws.onclose = (e) => resolve({ opened, code: e.code });
    });
    return { read, join, socket };
  }, { base, live: args.events.live, websocketUrl: `${base.replace(/^http/, "ws")}/event/${args.events.live}` });
  return out;
}

async function expiry(args, log, context) {
  await context.exposeFunction("__quoteUpdate", (quote) => progress("update", { quote }));
  const { page, record } = await openPage(context, args, "sdk-expiry");
  await page.evaluate(CATCH);
  const out = { record };
  const quote = await page.evaluate((id) => dlux.purchaseEventTicket(id, "hive", "bob"), args.events.concert);
  out.quote = quote;
  progress("quote", { quote });
  const watch = (id) =>
    page.evaluate(async (id) => {
      const updates = [];
      const final = await dlux.watchQuote(id, (q) => {
        updates.push(q.status);
        window.__quoteUpdate(q);
      }).done;
      return { updates, final };
    }, id);
  const started = Date.now();
  out.first = await watch(quote.quote_id);
  out.expired_after_ms = Date.now() - started;
  progress("expired");
  // The orchestrator reports a payment that arrives after expiry (seat given back): it is owed back.
  await nextStdinLine();
  out.second = await watch(quote.quote_id);
  return out;
}

main(async (args, log) => {
  // The test page is served by the interception above, so Chromium cannot know it came from loopback; the
  // local-network check would then refuse its WebSocket to the (loopback) gateway.
  const { context, close } = await launch({ args: ["--disable-features=LocalNetworkAccessChecks"] });
  try {
    if (args.scenario === "expiry") return await expiry(args, log, context);
    if (args.scenario === "cross_origin") return await crossOrigin(args, log, context);
    return await buyAndJoin(args, log, context);
  } finally {
    await close();
  }
});
