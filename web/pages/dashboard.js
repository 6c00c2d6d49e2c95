// The creator dashboard. Sign-in: the gateway's challenge signed by Hive Keychain (the SDK's signWithWallet,
// `requestSignBuffer` with the posting key), exchanged for a Bearer token kept in sessionStorage for this tab.
// Then: the creator's events with sales, create/edit/cancel with the gateway's validation messages placed on
// the field they concern, the live room (attendee list and the feed from /api/events/{id}/attendees/stream),
// charts the gateway draws as SVG, payouts per currency, and the payout address per chain (proven by signing).
//
// The attendee feed is read with fetch rather than EventSource, because EventSource cannot send the
// Authorization header and a token in the address would end up in logs and history.

import client, { signWithWallet } from "/sdk/events.js";
import { $, formatDate, h, say, sayError, siteHeader, statusWord, usd } from "/pages/ui.js";
import { signOnPhone } from "/pages/pairing.js";

siteHeader();
const message = $("#message");
const formMessage = $("#form-message");
const CRYPTO = ["HIVE", "HBD", "BTC", "ETH", "SOL", "POL", "BNB", "XMR",
  "USDC.ETH", "USDC.POL", "USDC.BNB", "USDC.SOL", "USDT.ETH", "USDT.POL", "USDT.BNB"];
const KEY = "dlux-creator";
const state = (window.dluxDashboard = { session: null, events: [], feed: [], attendees: [], watching: null });
let feedAbort = null;
let chartTimer = null;

for (const c of CRYPTO) {
  $("#f-crypto").append(h("label", {}, h("input", { type: "checkbox", name: "supported_crypto", value: c, checked: c === "ETH" || c === "HIVE" }), ` ${c}`));
}

/** The SDK's request with the creator's token. */
function api(path, init = {}) {
  return client.request(path, { ...init, headers: { ...(init.headers || {}), authorization: `Bearer ${state.session.token}` } });
}

/** An SVG the gateway draws for the signed-in creator, shown in `img`. */
async function showChart(img, path) {
  try {
    const res = await client.fetch(client.baseUrl + path, { headers: { authorization: `Bearer ${state.session.token}` } });
    if (!res.ok) return;
    const url = URL.createObjectURL(new Blob([await res.text()], { type: "image/svg+xml" }));
    if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
    img.dataset.url = url;
    img.src = url;
    img.hidden = false;
  } catch {
    // A chart is a nicety: the tables say the same.
  }
}

function signedIn(session) {
  state.session = session;
  sessionStorage.setItem(KEY, JSON.stringify(session));
  $("#login").hidden = true;
  $("#signed-in").hidden = false;
  $("#who").textContent = `Signed in as @${session.account} (${session.tier} tier) until ${formatDate(session.expires_at)}.`;
  document.body.dataset.signedIn = "true";
  refresh();
  loadAddresses();
}

function signOut() {
  sessionStorage.removeItem(KEY);
  state.session = null;
  if (feedAbort) feedAbort.abort();
  $("#login").hidden = false;
  $("#signed-in").hidden = true;
  delete document.body.dataset.signedIn;
}

async function handle(err, where = message) {
  if (err && (err.code === "invalid_token" || err.code === "token_expired")) signOut();
  sayError(where, err);
}

$("#login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  say(message, "");
  const account = $("#account").value.trim().toLowerCase().replace(/^@/, "");
  const button = $("#sign-in");
  button.disabled = true;
  try {
    const challenge = await client.request(`/api/creators/login/challenge?${new URLSearchParams({ account })}`);
    say(message, "Check Hive Keychain: it asks you to sign the sign-in text.");
    const signed = await signWithWallet(challenge.message, "hive", { account });
    const session = await client.request("/api/creators/login", {
      method: "POST",
      body: JSON.stringify({ account, message: challenge.message, signature: signed.signature }),
    });
    say(message, "");
    signedIn(session);
  } catch (err) {
    handle(err);
  } finally {
    button.disabled = false;
  }
});
$("#sign-in-phone").addEventListener("click", async () => {
  say(message, "");
  const account = $("#account").value.trim().toLowerCase().replace(/^@/, "");
  if (!account) return say(message, "Type your Hive account name first.", "error", "account_required");
  const button = $("#sign-in-phone");
  button.disabled = true;
  try {
    const challenge = await client.request(`/api/creators/login/challenge?${new URLSearchParams({ account })}`);
    const signed = await signOnPhone({ purpose: "sign", chain: "hive", wallet: account, message: challenge.message }, $("#pairing"), {
      onOpen: (pairing) => (state.pairing = { code: pairing.code, link: pairing.link }),
    });
    const session = await client.request("/api/creators/login", {
      method: "POST",
      body: JSON.stringify({ account, message: challenge.message, signature: signed.signature }),
    });
    $("#pairing").hidden = true;
    signedIn(session);
  } catch (err) {
    handle(err);
  } finally {
    button.disabled = false;
  }
});
$("#sign-out").addEventListener("click", signOut);

async function refresh() {
  try {
    const events = (state.events = await api("/api/creators/me/events"));
    $("#my-events").replaceChildren(...events.map(({ event: e, sales }) => {
      const open = e.status !== "cancelled" && e.status !== "ended";
      const refunds = e.status === "cancelled" && sales.tickets_sold > 0 ? ` · ${sales.tickets_sold} refund${sales.tickets_sold === 1 ? "" : "s"} due` : "";
      return h("tr", { "data-event-id": e.id },
        h("td", { "data-label": "Event" }, h("a", { href: `/pages/event.html?id=${e.id}` }, e.title)),
        h("td", { "data-label": "Starts" }, formatDate(e.event_start)),
        h("td", { "data-label": "Status" }, h("span", { class: `badge ${e.status}` }, statusWord(e.status)), refunds),
        h("td", { "data-label": "Sold" }, `${sales.tickets_sold} / ${e.max_attendees}`),
        h("td", { "data-label": "Revenue" }, sales.revenue.map((m) => `${m.amount} ${m.currency}`).join(", ") || "—"),
        h("td", { class: "actions" },
          h("button", { type: "button", class: "secondary", "data-action": "watch", "aria-label": `Watch ${e.title} live`, onclick: () => watch(e) }, "Live"), " ",
          open ? h("button", { type: "button", class: "secondary", "data-action": "edit", "aria-label": `Edit ${e.title}`, onclick: () => edit(e) }, "Edit") : null, " ",
          open ? h("button", { type: "button", class: "danger spaced", "data-action": "cancel", "aria-label": `Cancel event ${e.title}`, onclick: () => cancel(e) }, "Cancel event") : null));
    }));
    if (!events.length) $("#my-events").append(h("tr", {}, h("td", { colspan: 6 }, "No events yet: create one below.")));
    showChart($("#sales-chart"), "/api/creators/me/charts/sales.svg");
    const analytics = await api("/api/creators/me/analytics");
    state.analytics = analytics;
    $("#revenue").replaceChildren(...analytics.revenue.map((r) =>
      h("tr", { "data-currency": r.currency }, h("td", { "data-label": "Currency" }, r.currency), h("td", { "data-label": "Tickets" }, r.tickets_sold),
        h("td", { "data-label": "Gross" }, r.gross), h("td", { "data-label": "Commission" }, r.commission),
        h("td", { "data-label": "Net payout" }, h("strong", {}, r.net)), h("td", { "data-label": "≈ USD" }, r.net_usd ? usd(r.net_usd) : "no rate"))));
    if (!analytics.revenue.length) $("#revenue").append(h("tr", {}, h("td", { colspan: 6 }, "No sales yet.")));
    $("#usd-total").textContent = analytics.net_usd
      ? `Net ${usd(analytics.net_usd)} after commission (gross ${usd(analytics.gross_usd)}), at today's rates.`
      : analytics.revenue.length ? "No dollar total: a currency has no rate right now." : "";
    $("#payouts").replaceChildren(...analytics.payouts.map(payoutRow));
    if (!analytics.payouts.length) $("#payouts").append(h("tr", {}, h("td", { colspan: 4 }, "Nothing yet: payouts appear with your first sale.")));
  } catch (err) {
    handle(err);
  }
}

const PAYOUT_STATE = {
  pending: "Held until the event is over",
  due: "Due: being sent",
  settled: "Paid",
  cancelled: "Cancelled (refunded to buyers)",
};

function payoutRow(p) {
  const when = p.status === "settled" ? `${formatDate(p.settled_at)}` : p.due_at ? (p.status === "pending" ? `From ${formatDate(p.due_at)}` : formatDate(p.due_at)) : "—";
  return h("tr", { "data-status": p.status },
    h("td", { "data-label": "Amount" }, h("strong", {}, `${p.amount} ${p.currency}`), h("span", { class: "muted" }, ` · ${p.entries} sale${p.entries === 1 ? "" : "s"}`)),
    h("td", { "data-label": "State" }, PAYOUT_STATE[p.status] || p.status),
    h("td", { "data-label": "When" }, when, p.settled_txid ? h("div", { class: "mono muted wrap" }, `tx ${p.settled_txid}`) : null),
    h("td", { "data-label": "To", class: "mono wrap" }, p.recipient || (p.held ? `Held: no payout address on ${CHAIN_NAME[p.chain] || p.chain}` : "—")));
}

// ------------------------------------------------------------------------------------------------------------
// Payout addresses: one per chain, proven by a signature from that wallet over the gateway's challenge (bound to
// this creator). Signed here with the browser's wallet (Ethereum, Solana, Hive Keychain), on a phone through a
// pairing, or in any other wallet by copying the text and pasting its signature (Bitcoin, Monero).

const CHAIN_NAME = { hive: "Hive", btc: "Bitcoin", eth: "Ethereum", pol: "Polygon", bnb: "BNB Chain", sol: "Solana", xmr: "Monero" };
const PLACEHOLDER = { hive: "your Hive account", btc: "bc1q…", eth: "0x…", pol: "0x…", bnb: "0x…", sol: "base58 address", xmr: "4… or 8…" };
const BROWSER_SIGNS = new Set(["hive", "eth", "pol", "bnb", "sol"]);
const paMessage = $("#pa-message");

async function loadAddresses() {
  try {
    const mine = await api("/api/creators/me/payout-addresses");
    state.payoutAddresses = mine;
    $("#addresses").replaceChildren(...mine.addresses.map((a) => h("tr", { "data-chain": a.chain },
      h("td", { "data-label": "Chain" }, CHAIN_NAME[a.chain] || a.chain),
      h("td", { "data-label": "Address", class: "mono wrap" }, a.address),
      h("td", { "data-label": "Proven" }, formatDate(a.proven_at)))));
    if (!mine.addresses.length) $("#addresses").append(h("tr", {}, h("td", { colspan: 3 }, "No payout address yet: payouts wait until you set one.")));
    const held = $("#held");
    held.hidden = !mine.held.length;
    held.textContent = mine.held.length
      ? "Payouts held, no payout address: " + mine.held.map((x) => `${x.amount} ${x.currency} (${x.payouts} sale${x.payouts === 1 ? "" : "s"}) on ${CHAIN_NAME[x.chain] || x.chain}`).join("; ") + ". Set an address below to receive them."
      : "";
    held.dataset.chains = mine.held.map((x) => x.chain).join(" ");
    // Offer the chain a payout waits on, unless the creator already chose one.
    if (mine.held.length && !state.paChainChosen) {
      $("#pa-chain").value = mine.held[0].chain;
      chainChanged();
    }
  } catch (err) {
    handle(err, paMessage);
  }
}

function paChain() {
  return $("#pa-chain").value;
}

function chainChanged() {
  const chain = paChain();
  $("#pa-address").placeholder = PLACEHOLDER[chain] || "";
  $("#pa-sign").hidden = !BROWSER_SIGNS.has(chain);
  $("#pa-manual-box").hidden = true;
}
$("#pa-chain").addEventListener("change", () => {
  state.paChainChosen = true;
  chainChanged();
});
chainChanged();

/** The typed address, or (for a browser wallet) the wallet's own when none is typed. */
async function paAddress(fromWallet) {
  let address = $("#pa-address").value.trim();
  if (!address && fromWallet && paChain() !== "hive") {
    address = await client.getWalletAddress(paChain());
    $("#pa-address").value = address;
  }
  if (!address) throw Object.assign(new Error("Type the address payouts should go to."), { code: "address_required" });
  return address;
}

async function challengeFor(chain, address) {
  return api(`/api/creators/me/payout-addresses/challenge?${new URLSearchParams({ chain, address })}`);
}

async function saveAddress(chain, address, message, signature) {
  const saved = await api(`/api/creators/me/payout-addresses/${chain}`, { method: "PUT", body: JSON.stringify({ address, message, signature }) });
  const waiting = saved.unsettled_payouts ? ` — and the ${saved.unsettled_payouts} payout${saved.unsettled_payouts === 1 ? "" : "s"} not yet sent` : "";
  say(paMessage, `Saved: your ${CHAIN_NAME[chain] || chain} payouts go to ${saved.address}${waiting}.`, "ok");
  paMessage.dataset.chain = chain;
  $("#pa-manual-box").hidden = true;
  $("#pa-signature").value = "";
  await loadAddresses();
  refresh();
}

async function withButton(button, work) {
  say(paMessage, "");
  button.disabled = true;
  try {
    await work();
  } catch (err) {
    handle(err, paMessage);
  } finally {
    button.disabled = false;
  }
}

$("#address-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  withButton($("#pa-sign"), async () => {
    const chain = paChain();
    const address = await paAddress(true);
    const challenge = await challengeFor(chain, address);
    say(paMessage, "Check your wallet: it asks you to sign the payout text.");
    const signed = await signWithWallet(challenge.message, chain, { account: address });
    await saveAddress(chain, challenge.address, challenge.message, signed.signature);
  });
});
$("#pa-phone").addEventListener("click", () => withButton($("#pa-phone"), async () => {
  const chain = paChain();
  const address = await paAddress(false);
  const challenge = await challengeFor(chain, address);
  const signed = await signOnPhone({ purpose: "sign", chain, wallet: challenge.address, message: challenge.message }, $("#pa-pairing"), {
    onOpen: (pairing) => (state.payoutPairing = { code: pairing.code, link: pairing.link }),
  });
  $("#pa-pairing").hidden = true;
  await saveAddress(chain, challenge.address, challenge.message, signed.signature);
}));
$("#pa-manual").addEventListener("click", () => withButton($("#pa-manual"), async () => {
  const chain = paChain();
  const address = await paAddress(false);
  const challenge = await challengeFor(chain, address);
  state.manualChallenge = { chain, address: challenge.address, message: challenge.message };
  $("#pa-text").value = challenge.message;
  $("#pa-manual-box").hidden = false;
  $("#pa-signature").focus();
}));
$("#pa-save").addEventListener("click", () => withButton($("#pa-save"), async () => {
  const pending = state.manualChallenge;
  const signature = $("#pa-signature").value.trim();
  if (!pending || !signature) throw Object.assign(new Error("Paste the signature your wallet made."), { code: "signature_required" });
  await saveAddress(pending.chain, pending.address, pending.message, signature);
}));

// ------------------------------------------------------------------------------------------------------------
// Create, edit, cancel

/** Which field each of the gateway's 422 codes is about. */
const FIELD_OF = {
  title_required: "f-title", title_too_long: "f-title", description_too_long: "f-description",
  invalid_space_type: "f-space-type", space_id_required: "f-space-id",
  invalid_price: "f-price", price_not_positive: "f-price", too_many_decimals: "f-price", price_too_large: "f-price",
  price_decrease_after_sales: "f-price", unknown_currency: "f-currency", crypto_price_other_currency: "f-currency",
  unsupported_crypto: "f-crypto", no_supported_crypto: "f-crypto",
  invalid_shard_size: "f-shard", capacity_too_small: "f-seats", capacity_too_large: "f-seats", capacity_below_sold: "f-seats",
  end_before_start: "f-end", start_in_past: "f-start", schedule_locked: "f-start", invalid_time: "f-start",
  invalid_age_restriction: "f-age", invalid_cover_image_url: "f-cover", invalid_category: "f-category",
};

function localInput(iso) {
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function formBody(editing) {
  const v = (id) => $(`#${id}`).value.trim();
  const time = (id) => (v(id) ? new Date(v(id)).toISOString() : "");
  const crypto = [...document.querySelectorAll('#f-crypto input:checked')].map((i) => i.value);
  const body = {
    title: v("f-title"),
    description: v("f-description"),
    space_type: v("f-space-type"),
    space_id: v("f-space-id") || v("f-title").toLowerCase().replace(/[^a-z0-9]+/g, "-").slice(0, 60),
    ticket_price: v("f-price"),
    max_attendees: Number(v("f-seats")),
    ...(v("f-shard") ? { shard_size: Number(v("f-shard")) } : {}),
    event_start: time("f-start"),
    event_end: time("f-end"),
    require_camera: $("#f-camera").checked,
    require_microphone: $("#f-mic").checked,
  };
  if (!editing) body.ticket_currency = v("f-currency");
  if (crypto.length) body.supported_crypto = crypto;
  if (v("f-category")) body.event_category = v("f-category").toLowerCase();
  if (v("f-cover")) body.cover_image_url = v("f-cover");
  if (v("f-age")) body.age_restriction = Number(v("f-age"));
  return body;
}

function clearInvalid() {
  for (const el of document.querySelectorAll("#event-form [aria-invalid]")) el.removeAttribute("aria-invalid");
}

$("#event-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  say(formMessage, "");
  clearInvalid();
  const editing = $("#edit-id").value;
  // What the browser can tell before asking the gateway.
  const missing = ["f-title", "f-price", "f-seats", "f-start", "f-end"].find((id) => !$(`#${id}`).value.trim());
  if (missing) {
    const field = $(`#${missing}`);
    field.setAttribute("aria-invalid", "true");
    field.focus();
    return say(formMessage, `${document.querySelector(`label[for="${missing}"]`).textContent} is required.`, "error", "required");
  }
  const button = $("#save");
  button.disabled = true;
  try {
    const body = formBody(editing);
    const saved = editing
      ? await api(`/api/events/${editing}`, { method: "PATCH", body: JSON.stringify(body) })
      : await api("/api/events/create", { method: "POST", body: JSON.stringify(body) });
    say(formMessage, `${editing ? "Saved" : "Created"} “${saved.title}” (event ${saved.id}).`, "ok");
    formMessage.dataset.eventId = saved.id;
    resetForm(false);
    await refresh();
  } catch (err) {
    const field = err && FIELD_OF[err.code] && $(`#${FIELD_OF[err.code]}`);
    if (field) {
      field.setAttribute("aria-invalid", "true");
      (field.matches("input,select,textarea") ? field : field.querySelector("input")).focus();
    }
    if (err && (err.status === 422 || err.status === 409)) say(formMessage, `Please fix: ${inWords(err.message)}.`, "error", err.code);
    else handle(err, formMessage);
  } finally {
    button.disabled = false;
  }
});

/** The gateway's messages name API fields (`event_end must be after event_start`): say the form's labels. */
const LABELS = {
  event_start: "the start", event_end: "the end", sales_start: "the start of sales", sales_end: "the end of sales",
  ticket_price: "the ticket price", ticket_currency: "the price currency", max_attendees: "the number of seats", shard_size: "the avatars per shard",
  supported_crypto: "the accepted currencies", age_restriction: "the minimum age", cover_image_url: "the cover image URL",
  space_id: "the space id", space_type: "the space", event_category: "the category",
};
function inWords(text) {
  return String(text).replace(/\b[a-z]+_[a-z_]+\b/g, (name) => LABELS[name] || name);
}

function resetForm(clearMessage = true) {
  $("#event-form").reset();
  for (const i of document.querySelectorAll("#f-crypto input")) i.checked = i.value === "ETH" || i.value === "HIVE";
  $("#edit-id").value = "";
  $("#form-h").textContent = "Create an event";
  $("#save").textContent = "Create event";
  $("#f-currency").disabled = false;
  $("#new-event").hidden = true;
  if (clearMessage) say(formMessage, "");
}
$("#new-event").addEventListener("click", () => resetForm());

function edit(e) {
  resetForm();
  $("#edit-id").value = e.id;
  $("#form-h").textContent = `Edit “${e.title}”`;
  $("#save").textContent = "Save changes";
  $("#new-event").hidden = false;
  $("#f-title").value = e.title;
  $("#f-description").value = e.preview.description || "";
  $("#f-category").value = e.category || "";
  $("#f-space-type").value = e.preview.space.type;
  $("#f-space-id").value = e.preview.space.id || "";
  $("#f-cover").value = e.preview.cover_image_url || "";
  $("#f-price").value = e.price.amount;
  $("#f-currency").value = e.price.currency;
  $("#f-currency").disabled = true;
  $("#f-seats").value = e.max_attendees;
  $("#f-shard").value = e.shard_size || "";
  $("#f-start").value = localInput(e.event_start);
  $("#f-end").value = localInput(e.event_end);
  $("#f-age").value = e.preview.requirements.age_restriction || "";
  $("#f-camera").checked = e.preview.requirements.camera;
  $("#f-mic").checked = e.preview.requirements.microphone;
  for (const i of document.querySelectorAll("#f-crypto input")) i.checked = e.supported_crypto.includes(i.value);
  $("#f-title").focus();
}

async function cancel(e) {
  if (!confirm(`Cancel “${e.title}”? Paid tickets become refunds due. This cannot be undone.`)) return;
  try {
    await api(`/api/events/${e.id}/cancel`, { method: "POST" });
    say(message, `“${e.title}” was cancelled; buyers are owed refunds.`, "ok");
    await refresh();
  } catch (err) {
    handle(err);
  }
}

// ------------------------------------------------------------------------------------------------------------
// The live room

const FEED_TEXT = {
  joined: "joined", left: "left", chat: "sent a chat message", voice: "microphone", screen_share: "screen share",
  muted: "was muted", capacity: "capacity", shard: "moved to", announcement: "announced", ticket_sold: "ticket sold", payment_reversed: "payment reversed",
};

function short(id) {
  return id && id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id || "";
}

async function loadAttendees(eventId) {
  try {
    const list = (state.attendees = await api(`/api/events/${eventId}/attendees`));
    $("#attendees").replaceChildren(...list.map((a) => h("tr", { "data-client-id": a.client_id },
      h("td", { class: "mono", title: a.wallet, "data-label": "Attendee" }, short(a.wallet)), h("td", { "data-label": "Role" }, a.role),
      h("td", { "data-label": "Joined" }, formatDate(a.joined_at)),
      h("td", { "data-label": "Microphone" }, a.muted ? "muted by you" : a.mic ? "on" : "off"), h("td", { "data-label": "Chat messages" }, a.chat_messages),
      h("td", { class: "actions" }, a.role === "host" ? "" : moderation(eventId, a)))));
    if (!list.length) $("#attendees").append(h("tr", {}, h("td", { colspan: 6 }, "Nobody is in the room.")));
    $("#live-state").textContent = `${list.length} in the room.`;
  } catch (err) {
    handle(err);
  }
}

/** Mute (or unmute), kick and ban buttons for one attendee (the host's HTTP moderation endpoints). */
function moderation(eventId, a) {
  const who = short(a.wallet);
  const act = (action, body, ask) => async () => {
    if (ask && !confirm(ask)) return;
    try {
      await api(`/api/events/${eventId}/attendees/${encodeURIComponent(a.client_id)}/${action}`, { method: "POST", ...(body ? { body: JSON.stringify(body) } : {}) });
      say(message, { mute: a.muted ? `${who} may speak again.` : `${who} was muted.`, kick: `${who} was removed from the room.`, ban: `${who} was banned from this event.` }[action], "ok");
      setTimeout(() => loadAttendees(eventId), 500);
    } catch (err) {
      handle(err);
    }
  };
  return [
    h("button", { type: "button", class: "secondary", "data-action": "mute", "aria-label": `${a.muted ? "Unmute" : "Mute"} ${who}`, onclick: act("mute", { muted: !a.muted }) }, a.muted ? "Unmute" : "Mute"),
    h("button", { type: "button", class: "secondary", "data-action": "kick", "aria-label": `Kick ${who}`, onclick: act("kick", null, `Remove ${who} from the room? They can come back in.`) }, "Kick"),
    h("button", { type: "button", class: "danger", "data-action": "ban", "aria-label": `Ban ${who}`, onclick: act("ban", null, `Ban ${who} from this event? Their ticket stops working.`) }, "Ban"),
  ];
}

/** A feed item's detail in words (`{"on": true}` of a voice item is "turned on"). */
function detailWords(kind, d) {
  if (kind === "ticket_sold") return `${d.currency || ""} · ticket #${d.ticket_id}`;
  if (kind === "payment_reversed") return `ticket #${d.ticket_id} · its payment left the chain`;
  if (kind === "capacity") {
    const shards = (d.shards || []).map((s) => `shard ${s.shard}: ${s.attendees}`).join(", ");
    return `${d.attendees} of ${d.capacity} seats in the room${shards ? ` · ${shards}` : ""}`;
  }
  if (kind === "shard") return d.stage ? "the stage" : `shard ${d.shard}`;
  if (kind === "announcement") return d.text;
  if ((kind === "voice" || kind === "screen_share") && "on" in d) return d.on ? "turned on" : "turned off";
  if (kind === "muted" && "muted" in d) return d.muted ? "" : "unmuted";
  return Object.entries(d).map(([k, v]) => `${k.replace(/_/g, " ")} ${v}`).join(", ");
}

function addFeed(kind, item) {
  state.feed.push({ kind, ...item });
  const who = item.identity || item.client_id || "";
  const at = new Date(item.at || Date.now()).toLocaleTimeString();
  const d = item.detail && typeof item.detail === "object" ? item.detail : null;
  const detail = d ? detailWords(kind, d) : "";
  const li = h("li", { "data-kind": kind }, h("time", {}, at), " ", h("span", { class: "mono" }, short(who)), ` ${FEED_TEXT[kind] || kind}`, detail ? ` ${kind === "voice" || kind === "screen_share" ? detail : `(${detail})`}` : "");
  $("#feed").prepend(li);
}

/** Reads the attendee stream (SSE framing) with fetch, so the Bearer token goes in a header. */
async function follow(eventId, signal) {
  for (let attempt = 0; !signal.aborted && attempt < 20; attempt++) {
    try {
      const res = await client.fetch(`${client.baseUrl}/api/events/${eventId}/attendees/stream`, {
        headers: { accept: "text/event-stream", authorization: `Bearer ${state.session.token}` }, signal,
      });
      if (!res.ok) {
        const body = await res.json().catch(() => null);
        return handle(body && body.error ? body.error : { message: `the live feed answered ${res.status}` });
      }
      $("#live-state").dataset.feed = "open";
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) !== -1) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let kind = "message";
          const data = [];
          for (const line of frame.split("\n")) {
            if (line.startsWith("event:")) kind = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          }
          if (!data.length) continue;
          let item;
          try {
            item = JSON.parse(data.join("\n"));
          } catch {
            item = { detail: { missed: data.join("") } };
          }
          addFeed(kind, item);
          // The list comes from the attendance store, which the recorder writes in batches: read it now and
          // again shortly after, so a join is listed once its session is flushed.
          if (kind === "joined" || kind === "left" || kind === "muted") [0, 1000, 3000].forEach((ms) => setTimeout(() => loadAttendees(eventId), ms));
          if (kind === "joined" || kind === "left" || kind === "shard") setTimeout(() => state.watching === eventId && state.drawCharts(), 1500);
          if (kind === "ticket_sold" || kind === "payment_reversed") refresh();
        }
      }
    } catch (err) {
      if (signal.aborted) return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function watch(e) {
  if (feedAbort) feedAbort.abort();
  clearInterval(chartTimer);
  feedAbort = new AbortController();
  state.watching = e.id;
  state.feed = [];
  $("#feed").replaceChildren();
  $("#live").hidden = false;
  $("#live-title").textContent = e.title;
  delete $("#live-state").dataset.feed;
  loadAttendees(e.id);
  follow(e.id, feedAbort.signal);
  // Occupancy per shard (issue 24), for events split into shards: drawn for this column's width, so its text keeps
  // its size on a phone.
  $("#shards-chart").hidden = true;
  const shardsChart = () => {
    if (!e.shard_size) return;
    const width = Math.round(Math.min(640, Math.max(300, $("#live-state").clientWidth || 640)));
    showChart($("#shards-chart"), `/api/events/${e.id}/charts/shards.svg?width=${width}`);
  };
  const chart = () => {
    showChart($("#attendance-chart"), `/api/events/${e.id}/charts/attendance.svg`);
    shardsChart();
  };
  state.drawCharts = chart;
  chart();
  chartTimer = setInterval(chart, 30000);
  $("#live-h").scrollIntoView({ block: "start" });
}

// A session from earlier in this tab.
try {
  const saved = JSON.parse(sessionStorage.getItem(KEY) || "null");
  if (saved && Date.parse(saved.expires_at) > Date.now()) signedIn(saved);
} catch {
  sessionStorage.removeItem(KEY);
}
document.body.dataset.loaded = "true";
