// One event and its checkout. The buyer picks a currency and the paying wallet, gets a quote (the SDK's
// purchaseEventTicket), and sees the payment request as a QR code the gateway draws (GET /api/quotes/{id}/qr.svg),
// the amount, address, memo and a countdown to the quote's expiry. The status (seen, confirming n/m, paid,
// expired, refund due) is pushed by the gateway over Server-Sent Events and followed with the SDK's watchQuote.
// The quote id is kept in the address (#quote=…), so a reload picks the same quote up again.
// The box follows the quote: while it awaits payment it shows how to pay; once a payment is seen every way to
// pay again (QR code, amount, copy buttons, countdown) goes away, and once paid a receipt with the ticket and
// the way in takes its place, scrolled into view.
// A free event (price 0) has no payment step: "Free — reserve with your wallet". The buyer picks the wallet's
// chain and address, the wallet signs the event's access challenge (the SDK's rsvp), and the same receipt shows.

import { getCreator, getEvent, getQuote, getWalletAddress, purchaseEventTicket, rsvp, watchQuote } from "/sdk/events.js";
import { $, CHAINS, chainOf, copyButton, coverImage, coverUrl, formatDate, formatDuration, h, say, sayError, siteHeader, statusWord, usd } from "/pages/ui.js";

siteHeader();
const message = $("#message");
const buyMessage = $("#buy-message");
const eventId = new URLSearchParams(location.search).get("id");
const page = (window.dluxPage = { event: null, quote: null, statuses: [] });
let countdown = null;
let watch = null;

const STATUS_TEXT = {
  awaiting_payment: () => "Waiting for your payment…",
  seen: (q) => `Payment seen — ${q.progress || "waiting for confirmations"}. Don't pay again: the ticket comes once it is confirmed.`,
  confirming: (q) => `Payment seen — ${q.progress || "confirming"}. Don't pay again: the ticket comes once it is confirmed.`,
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

/** Where the event happens, in a visitor's words (the API's `custom · neon-room` is an internal id). */
function spaceWords(space) {
  const kinds = { custom: "A 3D room in your browser or VR headset", hubs: "A Hubs room", spatial: "A Spatial space" };
  return kinds[space.type] || "A 3D room in your browser or VR headset";
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
  $("#when").textContent = `${formatDate(event.event_start)} – ${formatDate(event.event_end)} · ${statusWord(event.status).toLowerCase()}`;
  $("#description").textContent = event.preview.description || "No description.";
  $("#seats").textContent = event.seats_left > 0 ? `${event.seats_left} of ${event.max_attendees} left` : "Sold out";
  $("#price").textContent = [event.price_usd ? usd(event.price_usd) : null, ...event.prices.map((p) => `${p.amount} ${p.currency}`)].filter(Boolean).join(" · ");
  $("#requirements").textContent = requirements(event.preview.requirements);
  $("#space").textContent = spaceWords(event.preview.space);
  if (coverUrl(event.preview.cover_image_url)) {
    $("#cover").replaceWith(coverImage(coverUrl(event.preview.cover_image_url), { id: "cover" }));
  }
  const rating = event.creator.rating && event.creator.rating.count
    ? `★ ${Number(event.creator.rating.average).toFixed(1)} (${event.creator.rating.count} ratings)` : "no ratings yet";
  $("#creator").replaceChildren("By ", h("strong", {}, event.creator.display_name || event.creator.account), ` (@${event.creator.account}) · `, h("span", { id: "rating" }, rating));
  getCreator(event.creator.account).then((c) => {
    if (c && c.bio) $("#creator").append(h("br"), h("span", { class: "muted" }, c.bio));
  }).catch(() => {});

  const select = $("#currency");
  page.free = Number(event.price.amount) === 0;
  if (page.free) {
    $("#price").textContent = "Free";
    $("#buy-h").textContent = "Free — reserve with your wallet";
    $("label[for=currency]").textContent = "Wallet on";
    $("#get-quote").textContent = "Reserve with your wallet";
    $("#wallet-help").textContent = "No payment: your wallet signs a message to prove it is yours, and the seat is reserved for it. It signs again at the door — on this device or on your phone. For Hive, your account name.";
    // Chains whose wallets can sign here (a pasted BTC/XMR address cannot sign a challenge in the browser).
    for (const c of CHAINS.filter((c) => c.wallet !== "paste")) select.append(h("option", { value: c.value }, c.label));
  } else {
    for (const p of event.prices) select.append(h("option", { value: p.currency.toLowerCase() }, `${p.currency} — ${p.amount}`));
  }
  $("#event").hidden = false;
  if (!event.on_sale || event.seats_left <= 0) {
    $("#buy-form").hidden = true;
    const closed = page.free ? "Reservations are not open right now." : "Tickets are not on sale right now.";
    say(buyMessage, event.seats_left <= 0 ? "Sold out: there are no seats left." : closed, "error");
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
  // A quote picked up again from the address: the form says what it was for.
  const option = [...$("#currency").options].find((o) => o.value === String(q.currency).toLowerCase());
  if (option) $("#currency").value = option.value;
  $("#wallet").value = q.wallet_address;
  history.replaceState(null, "", `${location.pathname}${location.search}#quote=${encodeURIComponent(q.quote_id)}`);
  $("#quote").hidden = false;
  $("#qr").src = `/api/quotes/${encodeURIComponent(q.quote_id)}/qr.svg`;
  $("#q-amount").textContent = `${q.amount} ${q.currency}`;
  $("#q-address").textContent = q.payment_address;
  $("#copy-amount").replaceChildren(copyButton("Copy", () => q.amount));
  $("#copy-address").replaceChildren(copyButton("Copy", () => q.payment_address));
  const memo = q.memo || q.reference;
  $("#q-memo").textContent = memo || "";
  $("#q-memo-label").textContent = q.memo ? "Memo (required)" : "Reference";
  $("#q-memo-label").hidden = $("#q-memo-row").hidden = !memo;
  $("#copy-memo").replaceChildren(memo ? copyButton("Copy", () => memo) : "");
  $("#memo-warn").hidden = !q.memo;
  const rate = Number(q.usd_rate);
  $("#q-usd").textContent = q.usd_rate && Number.isFinite(rate)
    ? `≈ ${usd((Number(q.amount) * rate).toFixed(2))} (1 ${q.currency} = ${usd(rate.toFixed(2))})` : "";
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
  // On a phone the box is below the form, off-screen: bring it up.
  $("#quote").scrollIntoView({ block: "start" });
  $("#quote").focus({ preventScroll: true });
}

function update(q) {
  page.quote = q;
  if (page.statuses[page.statuses.length - 1] !== `${q.status}:${q.confirmations}`) page.statuses.push(`${q.status}:${q.confirmations}`);
  const line = $("#quote-status");
  line.dataset.status = q.status;
  line.textContent = (STATUS_TEXT[q.status] || (() => q.status))(q);
  // Only an unpaid, open quote asks for money.
  const asking = q.status === "awaiting_payment";
  $("#pay-box").hidden = !asking;
  // A payment on its way: no second quote either (an expired or refunded one may be replaced).
  if (q.status === "seen" || q.status === "confirming" || q.status === "paid") $("#buy-form").hidden = true;
  if (!asking) clearInterval(countdown);
  if (q.status === "paid" && q.ticket) {
    $("#q-countdown").textContent = "—";
    receipt(q);
    $("#buy-form").hidden = true;
  }
}

/** A free event's reservation: the wallet signs the access challenge; the receipt follows. */
async function reserve() {
  const chain = $("#currency").value;
  const wallet = $("#wallet").value.trim();
  say(buyMessage, "Sign the message in your wallet to reserve your seat…", "");
  const { created, ticket } = await rsvp(page.event.id, chain, wallet);
  say(buyMessage, created ? "Reserved." : "This wallet already holds a ticket for this event.", "ok");
  $("#quote").hidden = false;
  $("#pay-box").hidden = true;
  const line = $("#quote-status");
  line.dataset.status = "reserved";
  line.textContent = "Reserved — your ticket is ready";
  $("#buy-form").hidden = true;
  receipt({ ticket, event_id: page.event.id, currency: chain, quote_id: ticket.quote_id || null });
}

/** The receipt: the ticket, what was paid, and the way in. */
function receipt(q) {
  const t = q.ticket;
  const p = $("#paid");
  const join = `/pages/join.html?event=${q.event_id}&chain=${encodeURIComponent(chainOf(q.currency))}&wallet=${encodeURIComponent(t.wallet_address)}`;
  const tickets = `/pages/tickets.html?wallet=${encodeURIComponent(t.wallet_address)}&chain=${encodeURIComponent(t.chain.toLowerCase())}`;
  // The stream repeats the paid quote (its first event, then its end): the receipt is drawn once.
  if (p.dataset.ticketId === String(t.ticket_id)) return;
  p.dataset.ticketId = String(t.ticket_id);
  const wasShown = !p.hidden;
  p.replaceChildren(
    h("h3", {}, "You're in: ticket #", String(t.ticket_id)),
    h("dl", { class: "facts" },
      h("dt", {}, "Event"), h("dd", {}, page.event ? page.event.title : `#${q.event_id}`),
      h("dt", {}, "When"), h("dd", {}, page.event ? `${formatDate(page.event.event_start)} – ${formatDate(page.event.event_end)}` : ""),
      h("dt", {}, "Paid"), h("dd", { class: "mono" }, page.free ? "Free" : `${t.amount_paid} ${t.currency}`),
      h("dt", {}, "Ticket held by"), h("dd", { class: "mono" }, t.wallet_address),
      ...(q.quote_id ? [h("dt", {}, "Quote"), h("dd", { class: "mono" }, q.quote_id)] : [])),
    h("p", { class: "muted" }, "At the door, sign with this wallet — here, or on your phone if you enter from a VR headset."),
    h("p", { class: "actions" },
      h("a", { href: join, id: "join-link", class: "button" }, "Join the event"),
      h("a", { href: tickets, class: "button secondary" }, "My tickets")));
  p.hidden = false;
  if (!wasShown) {
    p.scrollIntoView({ block: "start" });
    $("#join-link").focus({ preventScroll: true });
  }
}

$("#connect").addEventListener("click", connect);
$("#buy-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  say(buyMessage, "");
  const button = $("#get-quote");
  button.disabled = true;
  try {
    if (page.free) await reserve();
    else showQuote(await purchaseEventTicket(page.event.id, $("#currency").value, $("#wallet").value.trim()));
  } catch (err) {
    sayError(buyMessage, err);
  } finally {
    button.disabled = false;
  }
});
show();
