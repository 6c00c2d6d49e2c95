// "Sign on your phone": for a page whose device has no wallet (a VR headset's browser). The page opens a pairing
// on the gateway (POST /api/pairings), shows the phone's link as a QR code and a short code to type, and waits
// on the pairing's Server-Sent Events with the secret only this page holds. The phone signs on
// /pages/pair.html; the signature comes back here once, and the caller finishes (join, sign-in) as if the
// wallet had been in this browser. Nothing goes anywhere but this gateway.

import client from "/sdk/events.js";
import { formatDuration, h } from "/pages/ui.js";

/** "ABCDEFGH" → "ABCD-EFGH", easier to read off a screen. */
export const spaced = (code) => `${code.slice(0, 4)}-${code.slice(4)}`;

/**
 * Shows the pairing in `box` and resolves with `{ chain, wallet, message, signature }` once the phone signed.
 * `request`: `{ purpose: "join", event_id, chain }` or `{ purpose: "sign", chain, wallet, message }`.
 * Rejects with an Error whose `code` is the gateway's (`not_live`, …) or `pairing_expired` / `pairing_used`.
 * `onOpen(pairing)` is called once the code is showing (tests read `window.dluxPairing`).
 */
export async function signOnPhone(request, box, { onOpen } = {}) {
  const pairing = await client.request("/api/pairings", { method: "POST", body: JSON.stringify(request) });
  const expires = Date.parse(pairing.expires_at);
  const left = h("span", { class: "muted" });
  const status = h("p", { class: "message", role: "status" }, "Waiting for your phone…");
  box.replaceChildren(
    h("h2", {}, "Sign on your phone"),
    h("div", { class: "pairing" },
      h("img", { class: "qr", src: pairing.qr, alt: `QR code of the link ${pairing.link}`, width: 220, height: 220 }),
      h("div", {},
        h("ol", { class: "steps" },
          h("li", {}, "Open the camera or your wallet app's browser on your phone and scan this code,"),
          h("li", {}, "or open ", h("strong", { class: "mono" }, new URL(pairing.link).host + "/pages/pair.html"), " and type the code"),
          h("li", {}, "sign there: this page continues on its own.")),
        h("p", { class: "pair-code", "aria-label": `Code ${pairing.code.split("").join(" ")}` }, spaced(pairing.code)),
        h("p", {}, left))),
    status);
  box.hidden = false;
  box.scrollIntoView({ block: "nearest" });
  const tick = () => {
    const ms = expires - Date.now();
    left.textContent = ms > 0 ? `The code works once, for ${formatDuration(ms)}.` : "The code has expired.";
  };
  tick();
  const timer = setInterval(tick, 1000);
  if (onOpen) onOpen(pairing);
  const url = `/api/pairings/${encodeURIComponent(pairing.code)}/events?${new URLSearchParams({ secret: pairing.secret })}`;
  try {
    return await new Promise((resolve, reject) => {
      const source = new EventSource(url);
      source.addEventListener("pairing", (ev) => {
        const data = JSON.parse(ev.data);
        if (data.status === "pending") return;
        source.close();
        if (data.status === "signed") {
          status.className = "message ok";
          status.textContent = "Signed on your phone. Continuing…";
          resolve(data);
        } else {
          const code = data.status === "used" ? "pairing_used" : "pairing_expired";
          reject(Object.assign(new Error(code === "pairing_used" ? "This code was already used." : "The code expired before it was signed."), { code }));
        }
      });
      // EventSource retries on its own after a dropped connection; an error while closed means it gave up.
      source.addEventListener("error", () => {
        if (source.readyState === EventSource.CLOSED) reject(Object.assign(new Error("The gateway could not be reached."), { code: "network_error" }));
      });
    });
  } finally {
    clearInterval(timer);
  }
}
