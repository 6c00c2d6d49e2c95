// One event and its checkout. The buyer picks a currency and the paying wallet, gets a quote (the SDK's
// purchaseEventTicket), and sees the payment request as a QR code the gateway draws (GET /api/quotes/{id}/qr.svg),
// the amount, address, memo and a countdown to the quote's expiry. The status (seen, confirming n/m, paid,
// expired, refund due) is pushed by the gateway over Server-Sent Events and followed with the SDK's watchQuote.
// The quote id is kept in the address (#quote=…), so a reload picks the same quote up again.

import { getCreator, getEvent, getQuote, getWalletAddress, purchaseEventTicket, watchQuote } from "/sdk/events.js";
import { $, CHAINS, chainOf, copyButton, formatDate, formatDuration, h, say, sayError, siteHeader } from "/pages/ui.js";

siteHeader();
const message = $("#message");
const buyMessage = $("#buy-message");
const eventId = new URLSearchParams(location.search).get("id");
const page = (window.dluxPage = { event: null, quote: null, statuses: [] });
let countdown = null;
let watch = null;

const STATUS_TEXT = {
  awaiting_payment: () => "Waiting for your payment…",
  seen: (q) => `Payment seen — ${q.progress || "waiting for confirmations"}`,
  confirming: (q) => `Payment seen — ${q.progress || "confirming"}`,
  paid: () => "Paid — your ticket is ready",
  expired: () => "Expired — this quote can no longer be paid",
  refund_due: () => "Refund due — the payment came too late or was short; it will be refunded",
  cancelled: () => "Cancelled",
};

function requirements(r) {
  const parts = [];
  if (r.camera) parts.push("camera");
  if (r.microphone) parts.push("microphone");
  if (r.age_restriction) parts.push(`age ${r.age_restriction}+`);
  return parts.length ? parts.join(", ") : "none";
}

async function show() {
  if (!eventId) return say(message, "No event given: open this page from the marketplace.", "error");
  let event;
  try {
    event = page.event = await getEvent(eventId);
  } catch (err) {
    return sayError(message, err);
  }
  document.title = `${event.title} — dlux events`;
  $("#title").textContent = event.title;
  $("#when").textContent = `${formatDate(event.event_start)} – ${formatDate(event.event_end)} · ${event.status === "live" ? "live now" : event.status === "published" ? "upcoming" : event.status}`;
  $("#description").textContent = event.preview.description || "No description.";
  $("#seats").textContent = event.seats_left > 0 ? `${event.seats_left} of ${event.max_attendees} left` : "Sold out";
  $("#price").textContent = [event.price_usd ? `$${event.price_usd}` : null, ...event.prices.map((p) => `${p.amount} ${p.currency}`)].filter(Boolean).join(" · ");
  $("#requirements").textContent = requirements(event.preview.requirements);
  $("#space").textContent = `${event.preview.space.type}${event.preview.space.id ? ` · ${event.preview.space.id}` : ""}`;
  if (event.preview.cover_image_url && event.preview.cover_image_url.startsWith("/")) {
    $("#cover").replaceWith(h("img", { id: "cover", class: "cover", src: event.preview.cover_image_url, alt: "" }));
  }
  const rating = event.creator.rating && event.creator.rating.count
    ? `★ ${Number(event.creator.rating.average).toFixed(1)} (${event.creator.rating.count} ratings)` : "no ratings yet";
  $("#creator").replaceChildren("By ", h("strong", {}, event.creator.display_name || event.creator.account), ` (@${event.creator.account}) · `, h("span", { id: "rating" }, rating));
  getCreator(event.creator.account).then((c) => {
    if (c && c.bio) $("#creator").append(h("br"), h("span", { class: "muted" }, c.bio));
  }).catch(() => {});

  const select = $("#currency");
  for (const p of event.prices) select.append(h("option", { value: p.currency.toLowerCase() }, `${p.currency} — ${p.amount}`));
  $("#event").hidden = false;
  if (!event.on_sale || event.seats_left <= 0) {
    $("#buy-form").hidden = true;
    say(buyMessage, event.seats_left <= 0 ? "Sold out: there are no seats left." : "Tickets are not on sale right now.", "error");
  }
  const resume = new URLSearchParams(location.hash.slice(1)).get("quote");
  if (resume) {
    try {
      showQuote(await getQuote(resume));
    } catch (err) {
      sayError(buyMessage, err);
    }
  }
  document.body.dataset.loaded = "true";
}

async function connect() {
  const chain = chainOf($("#currency").value);
  const kind = (CHAINS.find((c) => c.value === chain) || {}).wallet;
  if (kind === "paste" || kind === "keychain") {
    say(buyMessage, kind === "keychain" ? "For Hive, type your account name: Keychain is asked only when you sign in to an event." : "Paste the address of your wallet: this chain has no browser wallet.", "");
    $("#wallet").focus();
    return;
  }
  try {
    $("#wallet").value = await getWalletAddress(chain);
    say(buyMessage, "Wallet connected.", "ok");
  } catch (err) {
    sayError(buyMessage, err);
  }
}

function showQuote(q) {
  page.quote = q;
  history.replaceState(null, "", `${location.pathname}${location.search}#quote=${encodeURIComponent(q.quote_id)}`);
  $("#quote").hidden = false;
  $("#qr").src = `/api/quotes/${encodeURIComponent(q.quote_id)}/qr.svg`;
  $("#q-amount").textContent = `${q.amount} ${q.currency}`;
  $("#q-address").textContent = q.payment_address;
  $("#copy-amount").replaceChildren(copyButton("Copy", () => q.amount));
  $("#copy-address").replaceChildren(copyButton("Copy", () => q.payment_address));
  $("#q-memo").textContent = q.memo || q.reference || "—";
  $("#q-memo-label").textContent = q.memo ? "Memo (required)" : q.reference ? "Reference" : "Memo";
  $("#q-id").textContent = q.quote_id;
  const uri = $("#q-uri");
  if (q.payment_uri) uri.href = q.payment_uri;
  uri.hidden = !q.payment_uri;
  update(q);
  clearInterval(countdown);
  const expires = Date.parse(q.expires_at);
  const tick = () => {
    const left = expires - Date.now();
    $("#q-countdown").textContent = page.quote.status === "paid" ? "—" : left > 0 ? formatDuration(left) : "expired";
  };
  tick();
  countdown = setInterval(tick, 1000);
  if (watch) watch.close();
  watch = watchQuote(q.quote_id, update);
  watch.done.then(update).catch((err) => sayError(buyMessage, err));
  $("#quote-status").focus?.();
}

function update(q) {
  page.quote = q;
  if (page.statuses[page.statuses.length - 1] !== `${q.status}:${q.confirmations}`) page.statuses.push(`${q.status}:${q.confirmations}`);
  const line = $("#quote-status");
  line.dataset.status = q.status;
  line.textContent = (STATUS_TEXT[q.status] || (() => q.status))(q);
  if (q.status === "paid" && q.ticket) {
    clearInterval(countdown);
    $("#q-countdown").textContent = "—";
    const p = $("#paid");
    const join = `/pages/join.html?event=${q.event_id}&chain=${encodeURIComponent(chainOf(q.currency))}&wallet=${encodeURIComponent(q.ticket.wallet_address)}`;
    p.replaceChildren(`Ticket #${q.ticket.ticket_id} belongs to ${q.ticket.wallet_address}. `, h("a", { href: join, id: "join-link" }, "Join the event"), " · ", h("a", { href: `/pages/tickets.html?wallet=${encodeURIComponent(q.ticket.wallet_address)}&chain=${encodeURIComponent(q.ticket.chain.toLowerCase())}` }, "My tickets"));
    p.hidden = false;
    $("#buy-form").hidden = true;
  }
  if (q.status === "expired" || q.status === "refund_due") clearInterval(countdown);
}

$("#connect").addEventListener("click", connect);
$("#buy-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  say(buyMessage, "");
  const button = $("#get-quote");
  button.disabled = true;
  try {
    showQuote(await purchaseEventTicket(page.event.id, $("#currency").value, $("#wallet").value.trim()));
  } catch (err) {
    sayError(buyMessage, err);
  } finally {
    button.disabled = false;
  }
});
show();
