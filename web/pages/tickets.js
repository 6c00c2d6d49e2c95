// The tickets a wallet holds (GET /api/tickets?wallet&chain, through the SDK's client), one card each — so the
// Join button is on screen on a phone, not at the end of a sideways-scrolling table. A ticket whose event is
// live or coming shows its way in; one whose event has ended shows that, and invites a rating signed by the
// ticket's wallet ("Rate event {id}: {n} stars", in this browser or on a phone through a pairing).

import client, { getEvent, getWalletAddress, signWithWallet } from "/sdk/events.js";
import { $, CHAINS, formatDate, h, say, sayError, siteHeader, statusWord } from "/pages/ui.js";
import { signOnPhone } from "/pages/pairing.js";

siteHeader();
const message = $("#message");
const chain = $("#chain");
for (const c of CHAINS) chain.append(h("option", { value: c.value }, c.label));
const params = new URLSearchParams(location.search);
if (params.get("chain")) chain.value = params.get("chain");
$("#wallet").value = params.get("wallet") || "";
const page = (window.dluxTickets = { tickets: [], rated: [] });

const TICKET_WORDS = { valid: "Valid", refunded: "Refunded", cancelled: "Cancelled", banned: "Banned by the host" };

/** The state a person cares about: a valid ticket to an ended event is "used up", not "valid". */
function ticketState(t, event) {
  if (t.status !== "valid") return { word: TICKET_WORDS[t.status] || t.status, kind: "cancelled" };
  if (!event) return { word: "Valid", kind: "" };
  if (event.status === "ended") return { word: "Event ended", kind: "ended" };
  if (event.status === "cancelled") return { word: "Event cancelled — refund due", kind: "cancelled" };
  if (event.status === "live") return { word: "Valid · live now", kind: "live" };
  return { word: "Valid", kind: "" };
}

function rateForm(t, event, wallet) {
  const id = `stars-${t.ticket_id}`;
  const out = h("p", { class: "message", role: "status" });
  const stars = h("select", { id, name: "stars" }, ...[5, 4, 3, 2, 1].map((n) => h("option", { value: n }, `${"★".repeat(n)} (${n})`)));
  const comment = h("input", { id: `comment-${t.ticket_id}`, name: "comment", maxlength: 2000, placeholder: "Optional" });
  const submit = async (viaPhone) => {
    say(out, "");
    const n = Number(stars.value);
    const text = `Rate event ${t.event_id}: ${n} stars`;
    try {
      const signed = viaPhone
        ? await signOnPhone({ purpose: "sign", chain: chain.value, wallet, message: text }, $("#pairing"))
        : await signWithWallet(text, chain.value, { account: wallet });
      $("#pairing").hidden = true;
      await client.request(`/api/events/${t.event_id}/ratings`, {
        method: "POST",
        body: JSON.stringify({ wallet_address: signed.wallet || signed.address, chain: chain.value, stars: n,
          comment: comment.value.trim() || null, message: text, signature: signed.signature }),
      });
      page.rated.push(t.event_id);
      form.replaceWith(h("p", { class: "message ok" }, `Thank you: you rated “${event.title}” ${n} of 5.`));
    } catch (err) {
      sayError(out, err);
    }
  };
  const form = h("form", { class: "rate", "aria-label": `Rate ${event.title}` },
    h("p", {}, h("strong", {}, "How was it? "), "Rate the event — your wallet signs the rating."),
    h("div", { class: "row" },
      h("div", {}, h("label", { for: id }, "Stars"), stars),
      h("div", {}, h("label", { for: `comment-${t.ticket_id}` }, "Comment"), comment)),
    h("p", { class: "actions" },
      h("button", { type: "submit" }, "Sign and rate"),
      h("button", { type: "button", class: "secondary", onclick: () => submit(true) }, "Sign on my phone")),
    out);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submit(false);
  });
  return form;
}

function card(t, event, wallet) {
  const state = ticketState(t, event);
  const join = `/pages/join.html?event=${t.event_id}&chain=${encodeURIComponent(chain.value)}&wallet=${encodeURIComponent(wallet)}`;
  const canJoin = t.status === "valid" && event && (event.status === "live" || event.status === "published");
  return h("li", { class: "card", "data-ticket-id": t.ticket_id, "data-state": state.kind || "valid" },
    h("div", {}, h("span", { class: `badge ${state.kind}` }, state.word)),
    h("h2", { class: "card-title" }, event ? h("a", { href: `/pages/event.html?id=${t.event_id}` }, event.title) : `Event ${t.event_id}`),
    event ? h("p", { class: "muted" }, `${formatDate(event.event_start)} – ${formatDate(event.event_end)}`) : null,
    h("p", {}, `Ticket #${t.ticket_id} · ${Number(t.amount_paid) === 0 ? "free (reserved)" : `paid ${t.amount_paid} ${t.currency}`}`),
    canJoin ? h("p", {}, h("a", { class: "button", href: join }, event.status === "live" ? "Join now" : "Join"),
      event.status === "published" ? h("span", { class: "muted" }, ` ${statusWord(event.status)}: the doors open shortly before the start.`) : null) : null,
    t.status === "valid" && event && event.status === "ended" ? rateForm(t, event, wallet) : null);
}

async function show() {
  say(message, "");
  const wallet = $("#wallet").value.trim();
  if (!wallet) return;
  try {
    const tickets = (page.tickets = await client.request(`/api/tickets?${new URLSearchParams({ wallet, chain: chain.value })}`));
    const cards = await Promise.all(tickets.map(async (t) => card(t, await getEvent(t.event_id).catch(() => null), wallet)));
    $("#tickets").replaceChildren(...cards);
    $("#result").hidden = false;
    if (!cards.length) say(message, "This wallet holds no tickets on this chain.");
  } catch (err) {
    sayError(message, err);
  }
  document.body.dataset.loaded = "true";
}

$("#lookup").addEventListener("submit", (ev) => {
  ev.preventDefault();
  history.replaceState(null, "", `?${new URLSearchParams({ wallet: $("#wallet").value.trim(), chain: chain.value })}`);
  show();
});
$("#connect").addEventListener("click", async () => {
  try {
    $("#wallet").value = await getWalletAddress(chain.value);
    show();
  } catch (err) {
    sayError(message, err);
  }
});
show();
