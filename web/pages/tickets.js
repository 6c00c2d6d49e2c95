// The tickets a wallet holds (GET /api/tickets?wallet&chain, through the SDK's client), each with the event's
// title and a link to join it. The wallet is pasted or read from the browser wallet.

import client, { getEvent, getWalletAddress } from "/sdk/events.js";
import { $, CHAINS, formatDate, h, say, sayError, siteHeader } from "/pages/ui.js";

siteHeader();
const message = $("#message");
const chain = $("#chain");
for (const c of CHAINS) chain.append(h("option", { value: c.value }, c.label));
const params = new URLSearchParams(location.search);
if (params.get("chain")) chain.value = params.get("chain");
$("#wallet").value = params.get("wallet") || "";

async function show() {
  say(message, "");
  const wallet = $("#wallet").value.trim();
  if (!wallet) return;
  try {
    const tickets = await client.request(`/api/tickets?${new URLSearchParams({ wallet, chain: chain.value })}`);
    const rows = await Promise.all(tickets.map(async (t) => {
      const event = await getEvent(t.event_id).catch(() => null);
      const join = `/pages/join.html?event=${t.event_id}&chain=${encodeURIComponent(chain.value)}&wallet=${encodeURIComponent(wallet)}`;
      return h("tr", { "data-ticket-id": t.ticket_id },
        h("td", {}, `#${t.ticket_id}`),
        h("td", {}, event ? h("a", { href: `/pages/event.html?id=${t.event_id}` }, event.title) : `Event ${t.event_id}`, event ? h("div", { class: "muted" }, formatDate(event.event_start)) : null),
        h("td", {}, `${t.amount_paid} ${t.currency}`),
        h("td", {}, t.status),
        h("td", {}, t.status === "valid" ? h("a", { class: "button", href: join }, "Join") : ""));
    }));
    $("#tickets").replaceChildren(...rows);
    $("#result").hidden = false;
    if (!rows.length) say(message, "This wallet holds no tickets on this chain.");
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
