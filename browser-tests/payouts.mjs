// The creator dashboard's payout addresses (issue 19) in headless Chromium against the real gateway, driven by
// gateway/tests/api/browser_pages.rs (a_creator_proves_payout_addresses_in_the_dashboard), which seeded a sale whose
// payout is held for want of an address.
//
// Args (JSON): { base_url, artifacts_dir, session (the creator's, as the dashboard keeps it), wallet_key (hex),
//               btc_address }
// Progress lines on stdout (the orchestrator answers on stdin):
//   {"step":"sign","message":…}   the page shows the text to sign in another wallet (reply: the BIP-137 signature)
// The result: what the page said before and after, the addresses listed, and the phone layout's overflow.

import { join } from "node:path";
import { createInterface } from "node:readline";
import { artifactsDir, launch, main, watchPage } from "./lib/browser.mjs";
import { EIP1193, exposeWallets } from "./lib/wallets.mjs";

const progress = (step, detail = {}) => process.stdout.write(JSON.stringify({ step, ...detail }) + "\n");
const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function reply() {
  const { value, done } = await stdinLines.next();
  if (done) throw new Error("the orchestrator closed stdin");
  return value;
}

const overflowing = () => {
  const width = document.documentElement.clientWidth;
  const sticking = [...document.querySelectorAll("body *")]
    .filter((el) => el.getBoundingClientRect().right > width + 1 && !el.closest(".scroll"))
    .map((el) => `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}`);
  const page = document.documentElement.scrollWidth > width ? [`page scrolls sideways: ${document.documentElement.scrollWidth} > ${width}`] : [];
  return page.concat(sticking).slice(0, 10);
};

const addresses = () => [...document.querySelectorAll("#addresses tr[data-chain]")].map((r) => [r.dataset.chain, r.children[1].textContent]);

main(async (args) => {
  const shots = artifactsDir(args.artifacts_dir);
  const { context, close } = await launch({ viewport: { width: 390, height: 844 } });
  const out = {};
  try {
    const wallet = await exposeWallets(context, { walletKey: args.wallet_key });
    out.wallet = wallet.address;
    const page = await context.newPage();
    await page.addInitScript((s) => sessionStorage.setItem("dlux-creator", JSON.stringify(s)), args.session);
    await page.addInitScript(EIP1193);
    const record = await watchPage(page, "creator", args.base_url);
    await page.goto(`${args.base_url}/pages/dashboard.html`);
    // Held for want of an address: the dashboard says so, here and in the payouts table.
    await page.waitForSelector("#held:not([hidden])");
    out.held = await page.textContent("#held");
    await page.waitForSelector("#payouts tr[data-status]");
    out.payoutTo = await page.$$eval("#payouts tr[data-status] td[data-label=To]", (c) => c.map((x) => x.textContent));
    out.emptyList = await page.textContent("#addresses");
    out.offeredChain = await page.inputValue("#pa-chain");
    out.phoneOverflow = await page.evaluate(overflowing);
    await page.locator("#payout-addresses").screenshot({ path: join(shots, "pages-payouts-held-phone.png") });

    // Ethereum, with the browser's wallet: its own address when none is typed.
    await page.selectOption("#pa-chain", "eth");
    await page.click("#pa-sign");
    await page.waitForSelector("#pa-message.ok");
    out.ethSaved = await page.textContent("#pa-message");
    await page.waitForFunction(() => document.querySelector("#held").hidden);
    await page.waitForFunction(() => document.querySelector("#addresses tr[data-chain=eth]"));

    // Bitcoin, signed in another wallet: the text is copied out and the signature pasted back.
    await page.selectOption("#pa-chain", "btc");
    out.browserButtonForBtc = await page.isVisible("#pa-sign");
    await page.fill("#pa-address", args.btc_address);
    await page.click("#pa-manual");
    await page.waitForSelector("#pa-manual-box:not([hidden])");
    const text = await page.inputValue("#pa-text");
    // A wrong signature first: the page says why, nothing is saved.
    await page.fill("#pa-signature", "H" + "A".repeat(87));
    await page.click("#pa-save");
    await page.waitForSelector("#pa-message.error");
    out.refused = await page.getAttribute("#pa-message", "data-code");
    progress("sign", { message: text });
    const signature = (await reply()).trim();
    await page.fill("#pa-signature", signature);
    await page.click("#pa-save");
    await page.waitForFunction(() => document.querySelector("#addresses tr[data-chain=btc]"));
    out.btcSaved = await page.textContent("#pa-message");
    // Polygon, signed on a phone: the dashboard shows a pairing, the phone's wallet signs on pair.html.
    await page.selectOption("#pa-chain", "pol");
    await page.fill("#pa-address", wallet.address);
    await page.click("#pa-phone");
    await page.waitForFunction(() => window.dluxDashboard.payoutPairing && document.querySelector("#pa-pairing .qr").naturalWidth > 0);
    const pairing = await page.evaluate(() => window.dluxDashboard.payoutPairing);
    out.pairingShownAt390 = await page.evaluate(overflowing);
    const phone = await launch({ viewport: { width: 390, height: 844 } });
    try {
      await exposeWallets(phone.context, { walletKey: args.wallet_key });
      const signer = await phone.context.newPage();
      await signer.addInitScript(EIP1193);
      await signer.goto(pairing.link);
      await signer.waitForFunction(() => window.dluxPair.status === "ready" || window.dluxPair.status === "refused");
      out.phoneAsked = await signer.textContent("#text");
      await signer.click("#sign");
      await signer.waitForFunction(() => window.dluxPair.status === "signed" || window.dluxPair.status === "refused");
      out.phoneStatus = await signer.evaluate(() => window.dluxPair.status);
    } finally {
      await phone.close();
    }
    await page.waitForFunction(() => document.querySelector("#addresses tr[data-chain=pol]"), null, { timeout: 15000 });
    out.polSaved = await page.textContent("#pa-message");
    out.addresses = await page.evaluate(addresses);
    out.phoneOverflowAfter = await page.evaluate(overflowing);
    await page.locator("#payout-addresses").screenshot({ path: join(shots, "pages-payouts-set-phone.png") });
    out.errors = record.errors;
    out.external = record.external;
    return out;
  } finally {
    await close();
  }
});
