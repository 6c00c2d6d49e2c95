// A free event's checkout (web/pages/event.js) in headless Chromium against the real gateway: no payment step,
// "Free — reserve with your wallet", the EIP-1193 test wallet signs the access challenge (the SDK's rsvp) and
// the receipt shows the ticket with the way in. Driven by gateway/tests/api/browser_free.rs.
//
// Args (JSON): { base_url, wallet_key (hex), event_id }. The last stdout line is the result (lib/browser.mjs).

import { launch, main, watchPage } from "./lib/browser.mjs";
import { EIP1193, evmKey } from "./lib/wallets.mjs";

main(async (args) => {
  const wallet = evmKey(args.wallet_key);
  const { context, close } = await launch({ viewport: { width: 1100, height: 800 } });
  try {
    await context.exposeFunction("__walletAddress", () => wallet.address);
    await context.exposeFunction("__walletSign", (hex) => wallet.sign(hex));
    const page = await context.newPage();
    await page.addInitScript(EIP1193);
    const record = await watchPage(page, "free", args.base_url);
    await page.goto(`${args.base_url}/pages/index.html`);
    await page.waitForSelector("body[data-loaded]");
    const card = await page.$eval(`#events li[data-event-id="${args.event_id}"]`, (el) => ({
      text: el.textContent, prices: el.querySelectorAll(".prices li").length,
    }));
    await page.goto(`${args.base_url}/pages/event.html?id=${args.event_id}`);
    await page.waitForSelector("body[data-loaded]");
    const before = await page.evaluate(() => ({
      heading: document.querySelector("#buy-h").textContent,
      price: document.querySelector("#price").textContent,
      button: document.querySelector("#get-quote").textContent,
      chains: [...document.querySelectorAll("#currency option")].map((o) => o.value),
    }));
    await page.selectOption("#currency", "eth");
    await page.click("#connect");
    await page.waitForFunction(() => document.querySelector("#wallet").value.startsWith("0x"));
    await page.click("#get-quote");
    await page.waitForSelector("#paid:not([hidden]) h3");
    const after = await page.evaluate(() => ({
      receipt: document.querySelector("#paid h3").textContent,
      paid: document.querySelector("#paid dl").textContent,
      join: document.querySelector("#join-link").getAttribute("href"),
      status: document.querySelector("#quote-status").textContent,
      payBoxHidden: document.querySelector("#pay-box").hidden,
      formHidden: document.querySelector("#buy-form").hidden,
    }));
    return { wallet: wallet.address, card, before, after, errors: record.errors, external: record.external };
  } finally {
    await close();
  }
});
