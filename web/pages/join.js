// Entering an event: the wallet holding the ticket signs the gateway's one-time challenge — in the browser
// (EIP-1193 for ETH/Polygon/BNB, Phantom's signMessage for Solana, Hive Keychain's requestSignBuffer for Hive), or
// elsewhere with the signature pasted back (Bitcoin, Monero, a CLI). The join response is handed to the A-Frame
// scene through sessionStorage ("dlux-join:<id>", what /scenes/event.js reads) and the scene opens.
// Every refusal is said in words; "not live yet" counts down to the doors opening and then lets the person retry.
// A device without a wallet (a VR headset) signs on a phone instead ("Sign on my phone", /pages/pairing.js).
// Before any wallet is asked, the doors are checked (GET /api/events/{id}/doors), so someone early meets the
// countdown, not a signing prompt or a wallet error.

import client, { getChallenge, getEvent, joinEvent, signWithWallet, getWalletAddress } from "/sdk/events.js";
import { $, CHAINS, copyButton, formatDate, formatDuration, h, say, sayError, siteHeader } from "/pages/ui.js";
import { signOnPhone } from "/pages/pairing.js";

siteHeader();
const message = $("#message");
const params = new URLSearchParams(location.search);
const chainSelect = $("#chain");
for (const c of CHAINS) chainSelect.append(h("option", { value: c.value }, c.label));
$("#event").value = params.get("event") || "";
if (params.get("chain")) chainSelect.value = params.get("chain");
$("#wallet").value = params.get("wallet") || "";
const page = (window.dluxJoin = { status: "idle", error: null });
let challenge = null;
let timer = null;

function kind() {
  return (CHAINS.find((c) => c.value === chainSelect.value) || {}).wallet;
}

function labelWallet() {
  const k = kind();
  $("#wallet-label").textContent = k === "keychain" ? "Hive account" : "Wallet address";
  $("#sign-join").hidden = k === "paste";
  $("#sign-phone").hidden = k === "paste";
  if (k === "paste") $("#paste").open = true;
}
chainSelect.addEventListener("change", labelWallet);
labelWallet();

async function eventName() {
  const id = $("#event").value.trim();
  if (!id) return;
  try {
    const e = await getEvent(id);
    $("#event-name").textContent = `${e.title} · ${formatDate(e.event_start)} – ${formatDate(e.event_end)}`;
    // Early visitors see the countdown at once, before trying anything.
    const doors = await client.request(`/api/events/${encodeURIComponent(id)}/doors`);
    if (doors.state === "not_open") countdownTo(`doors open at ${doors.opens_at}`);
  } catch (err) {
    $("#event-name").textContent = "";
  }
}
$("#event").addEventListener("change", eventName);
eventName();

function fail(err) {
  page.status = "refused";
  page.error = err && err.code;
  sayError(message, err);
  // Too early is not a failure: say when, calmly, and count down.
  if (err && err.code === "not_live") {
    message.className = "message";
    countdownTo(err.message);
  }
}

/** "doors open at <RFC 3339>": counts down, then invites the person to try again. */
function countdownTo(text) {
  const match = /(\d{4}-\d\d-\d\dT[^\s]+)/.exec(text || "");
  const box = $("#countdown");
  if (!match) return;
  const opens = Date.parse(match[1]);
  clearInterval(timer);
  box.hidden = false;
  const tick = () => {
    const left = opens - Date.now();
    if (left <= 0) {
      clearInterval(timer);
      box.textContent = "The doors are open: join again now.";
    } else {
      box.textContent = `Doors open at ${formatDate(new Date(opens).toISOString())}, in ${formatDuration(left)}.`;
    }
  };
  tick();
  timer = setInterval(tick, 1000);
}

function enter(eventId, joined) {
  page.status = "joined";
  sessionStorage.setItem(`dlux-join:${eventId}`, JSON.stringify(joined));
  say(message, "Ticket accepted. Opening the event…", "ok");
  location.href = `/scenes/event.html?event=${encodeURIComponent(eventId)}`;
}

/** Refuses (as the join endpoint would) when the doors are not open, before any wallet is involved. */
async function checkDoors(eventId) {
  if (!eventId) throw Object.assign(new Error("Type the event number first."), { code: "event_required" });
  const doors = await client.request(`/api/events/${encodeURIComponent(eventId)}/doors`);
  if (doors.state === "not_open") throw Object.assign(new Error(`doors open at ${doors.opens_at}`), { code: "not_live" });
  if (doors.state === "ended") throw Object.assign(new Error("the event has ended"), { code: "event_ended" });
  if (doors.state === "cancelled") throw Object.assign(new Error("the event was cancelled"), { code: "event_cancelled" });
}

$("#sign-phone").addEventListener("click", async () => {
  say(message, "");
  $("#countdown").hidden = true;
  const eventId = $("#event").value.trim();
  const chain = chainSelect.value;
  const button = $("#sign-phone");
  button.disabled = true;
  page.status = "pairing";
  try {
    await checkDoors(eventId);
    const signed = await signOnPhone({ purpose: "join", event_id: Number(eventId), chain }, $("#pairing"), {
      onOpen: (pairing) => (page.pairing = { code: pairing.code, link: pairing.link }),
    });
    $("#wallet").value = signed.wallet;
    enter(eventId, await pastedJoin(eventId, signed.wallet, signed.signature, chain, signed.message));
  } catch (err) {
    fail(err);
  } finally {
    button.disabled = false;
  }
});

$("#join-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  say(message, "");
  $("#countdown").hidden = true;
  const eventId = $("#event").value.trim();
  const chain = chainSelect.value;
  const button = $("#sign-join");
  button.disabled = true;
  page.status = "signing";
  try {
    await checkDoors(eventId);
    let wallet = $("#wallet").value.trim();
    if (kind() === "keychain" && !wallet) throw Object.assign(new Error("Type your Hive account name first."), { code: "account_required" });
    if (!wallet) wallet = $("#wallet").value = await getWalletAddress(chain);
    const { message: text } = await getChallenge(eventId, chain, wallet);
    say(message, "Check your wallet: it asks you to sign the text from the gateway.");
    const signed = await signWithWallet(text, chain, { account: wallet });
    enter(eventId, await joinEvent(eventId, signed.address, signed.signature, { chain, message: signed.message }));
  } catch (err) {
    fail(err);
  } finally {
    button.disabled = false;
  }
});

// The SDK's getChallenge and joinEvent know only the chains a browser wallet signs for; Bitcoin and Monero
// signatures are made elsewhere, so the paste flow asks the gateway through the SDK's client directly.
const BROWSER_CHAINS = new Set(["eth", "pol", "bnb", "sol", "hive"]);

function pastedChallenge(eventId, chain, wallet) {
  if (BROWSER_CHAINS.has(chain)) return getChallenge(eventId, chain, wallet);
  return client.request(`/api/events/${encodeURIComponent(eventId)}/challenge?${new URLSearchParams({ chain, wallet })}`);
}

function pastedJoin(eventId, wallet, signature, chain, message) {
  if (BROWSER_CHAINS.has(chain)) return joinEvent(eventId, wallet, signature, { chain, message });
  return client.request(`/api/events/${encodeURIComponent(eventId)}/join`, {
    method: "POST",
    body: JSON.stringify({ wallet_address: wallet, signature, chain, message }),
  });
}

$("#get-challenge").addEventListener("click", async () => {
  say(message, "");
  const wallet = $("#wallet").value.trim();
  if (!wallet) return say(message, "Type the address (or Hive account) that holds the ticket first.", "error", "wallet_required");
  try {
    challenge = await pastedChallenge($("#event").value.trim(), chainSelect.value, wallet);
    $("#challenge").textContent = challenge.message;
    $("#copy-slot").replaceChildren(copyButton("Copy the text", () => challenge.message));
    $("#challenge-expiry").textContent = challenge.expires_at ? `Valid until ${formatDate(challenge.expires_at)}.` : "";
    $("#challenge-box").hidden = false;
    $("#signature").focus();
  } catch (err) {
    fail(err);
  }
});

$("#paste-join").addEventListener("click", async () => {
  say(message, "");
  const eventId = $("#event").value.trim();
  const signature = $("#signature").value.trim();
  if (!challenge || !signature) return say(message, "Paste the signature of the text above.", "error", "signature_required");
  try {
    enter(eventId, await pastedJoin(eventId, $("#wallet").value.trim(), signature, chainSelect.value, challenge.message));
  } catch (err) {
    fail(err);
  }
});
