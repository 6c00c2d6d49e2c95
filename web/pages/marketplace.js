// The marketplace: published events that are upcoming or live, filtered and searched through the SDK's
// getAvailableEvents (GET /api/events), with seats left and the price in every currency the event accepts.
// The filters live in the address (?q=&category=…), so a filtered view can be shared or reloaded.

import { getAvailableEvents } from "/sdk/events.js";
import { $, coverImage, coverUrl, formatDate, h, sayError, say, siteHeader, statusWord, usd } from "/pages/ui.js";

siteHeader();
const form = $("#filters");
const list = $("#events");
const message = $("#message");
const more = $("#more");
let cursor = null;
let shown = 0;

// Restore the filters from the address.
const params = new URLSearchParams(location.search);
for (const el of form.elements) if (el.name && params.has(el.name)) el.value = params.get(el.name);
// On a phone the less used filters fold away so the events start on the first screen; a wider screen, or an
// address that sets one of them, shows them open.
const advanced = ["from", "to", "minPrice", "maxPrice", "sort"];
$("#more-filters").open = matchMedia("(min-width: 641px)").matches || advanced.some((name) => params.has(name));

function filters() {
  const f = { limit: 24 };
  const v = (name) => form.elements[name].value.trim();
  if (v("q")) f.q = v("q");
  if (v("category")) f.category = v("category").toLowerCase();
  if (v("creator")) f.creator = v("creator").toLowerCase();
  // The API's default is upcoming only; the page's default is what its heading says, upcoming and live.
  f.status = v("status") || "all";
  if (v("sort")) f.sort = v("sort");
  if (v("minPrice")) f.minPrice = v("minPrice");
  if (v("maxPrice")) f.maxPrice = v("maxPrice");
  // Dates are local days: from the start of `from` to the end of `to`.
  if (v("from")) f.from = new Date(`${v("from")}T00:00:00`);
  if (v("to")) f.to = new Date(`${v("to")}T23:59:59`);
  return f;
}

function card(e) {
  const live = e.status === "live";
  const seats = e.seats_left <= 0 ? "Sold out" : `${e.seats_left} of ${e.max_attendees} seats left`;
  const cover = coverUrl(e.preview.cover_image_url)
    ? coverImage(coverUrl(e.preview.cover_image_url))
    : h("div", { class: "cover", role: "presentation" });
  const rating = e.creator.rating && e.creator.rating.count ? ` · ★ ${Number(e.creator.rating.average).toFixed(1)}` : "";
  return h("li", { class: "card", "data-event-id": e.id },
    cover,
    h("div", {}, h("span", { class: `badge ${live ? "live" : e.status}` }, statusWord(e.status)), " ",
      e.category ? h("span", { class: "badge" }, e.category) : null),
    h("h2", { class: "card-title" }, h("a", { href: `/pages/event.html?id=${e.id}` }, e.title)),
    h("p", { class: "muted" }, formatDate(e.event_start), " · by ", h("a", { href: `?creator=${encodeURIComponent(e.creator.account)}` }, e.creator.display_name || e.creator.account), rating),
    h("p", { class: "seats" }, seats),
    // A free event (price 0) is reserved with a wallet signature: no per-currency prices to list.
    Number(e.price.amount) === 0
      ? h("p", {}, h("strong", {}, "Free"), " — reserve with your wallet")
      : h("p", {}, h("strong", {}, e.price_usd ? usd(e.price_usd) : `${e.price.amount} ${e.price.currency}`)),
    Number(e.price.amount) === 0
      ? null
      : h("ul", { class: "prices", "aria-label": "Price in each currency" }, ...e.prices.map((p) => h("li", {}, `${p.amount} ${p.currency}`))),
  );
}

async function load(append) {
  say(message, "");
  more.hidden = true;
  try {
    const page = await getAvailableEvents({ ...filters(), ...(append && cursor ? { cursor } : {}) });
    if (!append) {
      list.replaceChildren();
      shown = 0;
    }
    for (const e of page.items) {
      if (e.status === "ended" || e.status === "cancelled") continue;
      list.append(card(e));
      shown++;
    }
    cursor = page.next_cursor;
    more.hidden = !cursor || page.items.length < 24;
    $("#count").textContent = shown === 0 ? "No events match these filters." : `${shown} event${shown === 1 ? "" : "s"}`;
  } catch (err) {
    sayError(message, err);
  }
  document.body.dataset.loaded = "true";
}

form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = new URLSearchParams();
  for (const el of form.elements) if (el.name && el.value.trim()) q.set(el.name, el.value.trim());
  history.replaceState(null, "", `?${q}`);
  load(false);
});
more.addEventListener("click", () => load(true));
load(false);
