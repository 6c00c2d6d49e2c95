// Shared pieces of the buyer and creator pages: the site header, element building, formatting, and the words
// a person reads for each refusal code the gateway sends. Every API call goes through the SDK (/sdk/events.js).

import { DluxApiError, DluxWalletError } from "/sdk/events.js";

const NAV = [
  ["/pages/index.html", "Marketplace"],
  ["/pages/tickets.html", "My tickets"],
  ["/pages/join.html", "Join an event"],
  ["/pages/dashboard.html", "Creator dashboard"],
];

/** Puts the site header (with a skip link and the current page marked) at the top of the body. */
export function siteHeader() {
  const header = h("header", { class: "site" },
    h("a", { class: "skip", href: "#main" }, "Skip to content"),
    h("a", { class: "brand", href: "/pages/index.html" }, "dlux events"),
    h("nav", { "aria-label": "Main" }, h("ul", {}, ...NAV.map(([href, text]) =>
      h("li", {}, h("a", { href, ...(location.pathname === href ? { "aria-current": "page" } : {}) }, text))))));
  document.body.prepend(header);
}

/** `h("a", {href}, "text", child)`: an element with attributes and children (strings become text). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

export function formatDate(iso) {
  const d = new Date(iso);
  return d.toLocaleString(undefined, { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", timeZoneName: "short" });
}

/** "$2.50": dollars as people write them (the API sends "2.5"). */
export function usd(amount) {
  const n = Number(amount);
  if (!Number.isFinite(n)) return `$${amount}`;
  return n.toLocaleString("en-US", { style: "currency", currency: "USD", minimumFractionDigits: n >= 1000 ? 0 : 2 });
}

/** An event's status in a buyer's words (the API's `published` is "Upcoming"). */
export function statusWord(status) {
  return { published: "Upcoming", live: "Live now", ended: "Ended", cancelled: "Cancelled", draft: "Draft" }[status] || status;
}

/** A cover image the pages may show: an https URL, or a path on this gateway ("/covers/…"). */
export function coverUrl(url) {
  if (typeof url !== "string") return null;
  if (url.startsWith("/") && !url.startsWith("//")) return url;
  return /^https:\/\/[^\s]+$/i.test(url) ? url : null;
}

/** The cover as an image, which falls back to the plain gradient if it cannot be loaded. */
export function coverImage(url, attrs = {}) {
  const img = h("img", { class: "cover", src: url, alt: "", ...attrs });
  img.addEventListener("error", () => img.replaceWith(h("div", { class: "cover", role: "presentation", ...(attrs.id ? { id: attrs.id } : {}) })), { once: true });
  return img;
}

/** "2 h 05 min", "4 min 09 s", for a countdown. */
export function formatDuration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  const d = Math.floor(s / 86400), hr = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (d) return `${d} d ${hr} h`;
  if (hr) return `${hr} h ${String(m).padStart(2, "0")} min`;
  return `${m} min ${String(sec).padStart(2, "0")} s`;
}

/** What a person should read for each refusal. Unknown codes fall back to the server's own message. */
const EXPLAIN = {
  no_ticket: "This wallet holds no ticket for this event. Buy one first, or sign with the wallet that paid.",
  ticket_banned: "This ticket was banned from the event by its host.",
  ticket_refunded: "This ticket was refunded, so it no longer admits you.",
  ticket_cancelled: "This ticket was cancelled.",
  event_cancelled: "The event was cancelled by its creator.",
  event_ended: "The event has ended.",
  sold_out: "Sold out: there are no seats left.",
  too_many_quotes_from_address: "Too many unpaid quotes for this event come from your network. Pay one, or try again when one expires.",
  too_many_quotes_for_wallet: "This wallet already has several unpaid quotes for this event. Pay one, or try again when one expires.",
  full: "The room is full right now. Try again in a moment.",
  room_full: "The room is full right now. Try again in a moment.",
  wrong_signer: "The signature was not made by this wallet. Check the address and sign the exact text shown.",
  replayed: "This signature was already used. Get a new challenge and sign again.",
  challenge_expired: "The challenge expired. Get a new one and sign again.",
  sales_closed: "Ticket sales for this event are closed.",
  not_on_sale: "Tickets for this event are not on sale right now.",
  event_not_found: "There is no such event.",
  quote_not_found: "This quote does not exist any more.",
  network_error: "The gateway could not be reached. Check your connection and try again.",
  no_wallet: "No wallet was found in this browser. Use “Sign on my phone” to sign with your phone's wallet, or paste a signature made elsewhere.",
  pairing_used: "This code was already used. Start again on the other device to get a new one.",
  pairing_expired: "This code has expired. Start again on the other device to get a new one.",
  pairing_not_found: "There is no such code. Check it, or start again on the other device.",
  rejected: "The wallet declined the request.",
  invalid_token: "Your sign-in is not valid. Sign in again.",
  token_expired: "Your sign-in has expired. Sign in again.",
  subscription_required: "Creating events needs a premium or pro creator subscription.",
};

/** A readable sentence for an error thrown by the SDK. */
export function explain(err) {
  if (!err) return "Something went wrong.";
  // not_live's message names the time the doors open: keep it.
  if (err.code === "not_live") {
    const opens = /(\d{4}-\d\d-\d\dT\S+)/.exec(err.message || "");
    return opens ? `The event is not open yet: the doors open at ${formatDate(opens[1])}.` : `The event is not open yet (${err.message}).`;
  }
  if (err.code && EXPLAIN[err.code]) return EXPLAIN[err.code];
  return String(err.message || err);
}

/** Shows `text` in a message box (role=alert for errors); `kind` is "", "error" or "ok". */
export function say(el, text, kind = "", code = "") {
  el.className = `message ${kind}`.trim();
  el.textContent = text;
  if (code) el.dataset.code = code;
  else delete el.dataset.code;
}

export function sayError(el, err) {
  say(el, explain(err), "error", err && err.code ? err.code : "error");
}

/** The chains the pages offer, with how a wallet signs for each. */
export const CHAINS = [
  { value: "eth", label: "Ethereum (ETH)", wallet: "eip1193" },
  { value: "pol", label: "Polygon (POL)", wallet: "eip1193" },
  { value: "bnb", label: "BNB Smart Chain (BNB)", wallet: "eip1193" },
  { value: "sol", label: "Solana (SOL)", wallet: "phantom" },
  { value: "hive", label: "Hive (HIVE / HBD)", wallet: "keychain" },
  { value: "btc", label: "Bitcoin (BTC)", wallet: "paste" },
  { value: "xmr", label: "Monero (XMR)", wallet: "paste" },
];

/** The chain a currency is paid on: a token's network (`USDC.POL` → `pol`), Hive for HBD. */
export function chainOf(currency) {
  const c = String(currency).toLowerCase();
  const token = c.match(/^(?:usdc|usdt)[._-](\w+)$/);
  if (token) return token[1];
  return c === "hbd" ? "hive" : c;
}

/** A copy-to-clipboard button for the text `get()` returns. */
export function copyButton(label, get) {
  const button = h("button", { type: "button", class: "secondary" }, label);
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(get());
      button.textContent = "Copied";
    } catch {
      button.textContent = "Select and copy the text";
    }
    setTimeout(() => (button.textContent = label), 2000);
  });
  return button;
}
