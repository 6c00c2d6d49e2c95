// The phone's side of "sign on your phone" (see /pages/pairing.js for the waiting screen's side). Opened from
// the QR code (?code=…) or with the code typed; it shows what the other screen asks for, signs with this
// phone's wallet (EIP-1193, Phantom or Hive Keychain — their mobile browsers expose the same APIs), and posts
// the signature once to the gateway. A used or expired code is refused by the gateway and said in words.

import client, { getChallenge, getWalletAddress, signWithWallet } from "/sdk/events.js";
import { $, CHAINS, say, sayError, siteHeader } from "/pages/ui.js";
import { spaced } from "/pages/pairing.js";

siteHeader();
const message = $("#message");
const page = (window.dluxPair = { status: "idle", error: null, pairing: null });
let pairing = null;

function refuse(err) {
  page.status = "refused";
  page.error = err && err.code;
  sayError(message, err);
}

const walletKind = (chain) => (CHAINS.find((c) => c.value === chain) || {}).wallet;

async function load(code) {
  say(message, "");
  try {
    pairing = page.pairing = await client.request(`/api/pairings/${encodeURIComponent(code)}`);
  } catch (err) {
    $("#request").hidden = true;
    $("#code-form").hidden = false;
    return refuse(err);
  }
  $("#code-form").hidden = true;
  const chainName = (CHAINS.find((c) => c.value === pairing.chain) || { label: pairing.chain }).label;
  if (pairing.purpose === "join") {
    $("#request-h").textContent = `Enter “${pairing.event_title || `event ${pairing.event_id}`}”`;
    $("#request-what").textContent = `Sign with the ${chainName} wallet that holds your ticket. The code ${spaced(pairing.code)} then lets the other screen in.`;
  } else {
    $("#request-h").textContent = `Sign as ${pairing.wallet}`;
    $("#request-what").textContent = `The other screen (code ${spaced(pairing.code)}) asks ${pairing.wallet} to sign the text below with a ${chainName} wallet.`;
    $("#text").textContent = pairing.message;
    $("#text-box").hidden = false;
  }
  $("#code-shown").textContent = spaced(pairing.code);
  // Hive Keychain signs for a named account: ask for it unless the request names it.
  const needsAccount = walletKind(pairing.chain) === "keychain" && pairing.purpose === "join";
  $("#account-row").hidden = !needsAccount;
  $("#request").hidden = false;
  page.status = "ready";
  $("#sign").focus();
}

$("#sign").addEventListener("click", async () => {
  say(message, "");
  const button = $("#sign");
  button.disabled = true;
  page.status = "signing";
  try {
    let signed;
    if (pairing.purpose === "join") {
      let wallet = $("#account").value.trim().replace(/^@/, "").toLowerCase();
      if (walletKind(pairing.chain) === "keychain" && !wallet) {
        throw Object.assign(new Error("Type your Hive account name first."), { code: "account_required" });
      }
      if (!wallet) wallet = await getWalletAddress(pairing.chain);
      const challenge = await getChallenge(pairing.event_id, pairing.chain, wallet);
      say(message, "Check your wallet: it asks you to sign the text from the gateway.");
      signed = await signWithWallet(challenge.message, pairing.chain, { account: wallet });
    } else {
      say(message, "Check your wallet: it asks you to sign the text above.");
      signed = await signWithWallet(pairing.message, pairing.chain, { account: pairing.wallet });
    }
    await client.request(`/api/pairings/${encodeURIComponent(pairing.code)}/signature`, {
      method: "POST",
      body: JSON.stringify({ wallet: signed.address, message: signed.message, signature: signed.signature }),
    });
    page.status = "signed";
    $("#request").hidden = true;
    say(message, "Signed. Look at your other screen: it continues on its own. You can close this page.", "ok");
  } catch (err) {
    refuse(err);
  } finally {
    button.disabled = false;
  }
});

$("#code-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const code = $("#code").value.replace(/[\s-]/g, "").toUpperCase();
  history.replaceState(null, "", `${location.pathname}?code=${encodeURIComponent(code)}`);
  load(code);
});

const code = new URLSearchParams(location.search).get("code");
if (code) load(code);
else $("#code-form").hidden = false;
