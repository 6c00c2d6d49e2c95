/**
 * The dlux ticketing client for web pages: list events, buy a ticket, follow the payment, prove the wallet
 * and join the event's networked A-Frame scene. One dependency-free ES module, served by the gateway at
 * `/sdk/events.js`:
 *
 *   import * as dlux from "https://gateway.example/sdk/events.js";
 *   const { items } = await dlux.getAvailableEvents({ upcoming: true, limit: 20 });
 *
 * The named exports use a client whose base URL is the origin the module was loaded from; `createClient`
 * makes one for another gateway. Every call that reaches the server throws {@link DluxApiError} on a
 * refusal, carrying the server's `code`, `message` and HTTP `status`; wallet problems (none installed, the
 * user declined) throw {@link DluxWalletError}. Types: `events.d.ts` beside this file.
 *
 * @module dlux-events
 */

/** Statuses after which a quote changes no more. */
export const TERMINAL_QUOTE_STATUSES = Object.freeze(["paid", "expired", "refund_due", "cancelled"]);

/** A refusal or failure reported by the gateway (`{ "error": { "code", "message" } }`) or by the network. */
export class DluxApiError extends Error {
  /**
   * @param {string} code The server's machine code (`sold_out`, `quote_not_found`, …), or `network_error`
   *   when no answer came, or `invalid_response` when the answer was not the API's JSON.
   * @param {string} message
   * @param {number} status The HTTP status; 0 when no answer came.
   */
  constructor(code, message, status) {
    super(message);
    this.name = "DluxApiError";
    this.code = code;
    this.status = status;
  }
}

/** A wallet problem in the browser: `no_wallet` (with `missing` naming what is absent), `rejected`, `wallet_error`. */
export class DluxWalletError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {string} [missing] The global the page lacks, e.g. `window.ethereum`.
   */
  constructor(code, message, missing) {
    super(message);
    this.name = "DluxWalletError";
    this.code = code;
    if (missing) this.missing = missing;
  }
}

/** Chain names as pages write them → the gateway's chain symbols. */
const CHAINS = {
  eth: "eth", ethereum: "eth",
  pol: "pol", polygon: "pol", matic: "pol",
  bnb: "bnb", bsc: "bnb",
  sol: "sol", solana: "sol",
  hive: "hive", hbd: "hive",
  btc: "btc", bitcoin: "btc",
  xmr: "xmr", monero: "xmr",
};

/** Chains whose wallets no browser API reaches: sign in the wallet app or CLI and pass the signature in. */
const NO_BROWSER_WALLET = { btc: "Bitcoin", xmr: "Monero" };

/**
 * The gateway chain symbol for a chain name (`ethereum` → `eth`, `solana` → `sol`, …).
 * @param {string} chain
 * @returns {"eth"|"pol"|"bnb"|"sol"|"hive"|"btc"|"xmr"}
 */
export function normalizeChain(chain) {
  const symbol = CHAINS[String(chain || "").trim().toLowerCase()];
  if (!symbol) {
    throw new DluxWalletError("unsupported_chain", `unknown chain \`${chain}\`: use eth, polygon, bnb, solana, hive, bitcoin or monero`);
  }
  return /** @type {any} */ (symbol);
}

/** The chain symbol, refusing chains the browser has no wallet API for. */
function browserWalletChain(chain) {
  const symbol = normalizeChain(chain);
  if (NO_BROWSER_WALLET[symbol]) {
    throw new DluxWalletError(
      "unsupported_chain",
      `browsers have no ${NO_BROWSER_WALLET[symbol]} wallet API: sign the challenge in your wallet or CLI and pass the signature to joinEvent`,
    );
  }
  return symbol;
}

function defaultBaseUrl() {
  try {
    return new URL("/", import.meta.url).origin;
  } catch {
    return typeof location !== "undefined" ? location.origin : "";
  }
}

const BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/** @param {Uint8Array} bytes */
function base58(bytes) {
  const digits = [0];
  for (const byte of bytes) {
    let carry = byte;
    for (let i = 0; i < digits.length; i++) {
      carry += digits[i] << 8;
      digits[i] = carry % 58;
      carry = (carry / 58) | 0;
    }
    while (carry > 0) {
      digits.push(carry % 58);
      carry = (carry / 58) | 0;
    }
  }
  let out = "";
  for (let i = 0; i < bytes.length && bytes[i] === 0; i++) out += "1";
  for (let i = digits.length - 1; i >= 0; i--) out += BASE58[digits[i]];
  return out;
}

/** @param {Uint8Array} bytes */
function hex(bytes) {
  return "0x" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** EIP-1193 and wallet errors → DluxWalletError; anything else unchanged. */
function walletFailure(err, wallet) {
  if (err instanceof DluxWalletError) return err;
  const code = err && (err.code === 4001 || err.code === "ACTION_REJECTED") ? "rejected" : "wallet_error";
  const text = err && err.message ? err.message : String(err);
  return new DluxWalletError(code, code === "rejected" ? `${wallet}: the user declined to sign` : `${wallet}: ${text}`);
}

/**
 * A client for one gateway.
 */
export class DluxClient {
  /**
   * @param {{ baseUrl?: string, fetch?: typeof fetch, window?: any }} [options] `baseUrl` defaults to the origin
   *   this module was served from; `window` is where wallets are looked up (default: the global object).
   */
  constructor(options = {}) {
    this.baseUrl = String(options.baseUrl || defaultBaseUrl()).replace(/\/+$/, "");
    this.fetch = options.fetch || globalThis.fetch.bind(globalThis);
    this.window = options.window || globalThis;
  }

  /**
   * @param {string} path
   * @param {RequestInit} [init]
   */
  async request(path, init = {}) {
    let response;
    try {
      response = await this.fetch(this.baseUrl + path, {
        ...init,
        headers: { accept: "application/json", ...(init.body ? { "content-type": "application/json" } : {}), ...init.headers },
      });
    } catch (err) {
      throw new DluxApiError("network_error", `cannot reach the gateway at ${this.baseUrl}: ${err && err.message ? err.message : err}`, 0);
    }
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      // Not the API's JSON: reported below.
    }
    if (!response.ok) {
      const error = body && body.error;
      if (error && typeof error.code === "string") throw new DluxApiError(error.code, String(error.message || error.code), response.status);
      throw new DluxApiError("http_error", `${init.method || "GET"} ${path} answered ${response.status}`, response.status);
    }
    if (body === null) throw new DluxApiError("invalid_response", `${path} did not answer JSON`, response.status);
    return body;
  }

  /**
   * The marketplace (`GET /api/events`): published events, soonest first, a page at a time.
   * @param {import("./events").EventFilters} [filters]
   * @returns {Promise<import("./events").EventPage>}
   */
  getAvailableEvents(filters = {}) {
    const names = { limit: "limit", upcoming: "upcoming", category: "category", minPrice: "minPrice", maxPrice: "maxPrice",
      from: "from", to: "to", cursor: "cursor", status: "status", creator: "creator", q: "q", sort: "sort" };
    const query = new URLSearchParams();
    for (const [key, name] of Object.entries(names)) {
      let value = filters[key];
      if (value === undefined || value === null || value === "") continue;
      if (value instanceof Date) value = value.toISOString();
      query.set(name, String(value));
    }
    const qs = query.toString();
    return this.request("/api/events" + (qs ? "?" + qs : ""));
  }

  /**
   * One event (`GET /api/events/{id}`).
   * @param {number|string} id
   * @returns {Promise<import("./events").DluxEvent>}
   */
  getEvent(id) {
    return this.request(`/api/events/${encodeURIComponent(id)}`);
  }

  /**
   * A creator's public profile (`GET /api/creators/{account}`).
   * @param {string} account
   * @returns {Promise<import("./events").Creator>}
   */
  getCreator(account) {
    return this.request(`/api/creators/${encodeURIComponent(account)}`);
  }

  /**
   * A quote with payment instructions, holding a seat until it expires (`POST /api/events/purchase`).
   * @param {number|string} eventId
   * @param {string} paymentMethod `hive`, `hbd`, `btc`, `eth`, `sol`, `pol`, `bnb`, `xmr`, or a chain name.
   * @param {string} walletAddress The wallet that pays and will hold the ticket.
   * @returns {Promise<import("./events").Quote>}
   */
  purchaseEventTicket(eventId, paymentMethod, walletAddress) {
    return this.request("/api/events/purchase", {
      method: "POST",
      body: JSON.stringify({ event_id: eventId, payment_method: paymentMethod, wallet_address: walletAddress }),
    });
  }

  /**
   * A quote as it stands (`GET /api/quotes/{id}`).
   * @param {string} quoteId
   * @returns {Promise<import("./events").Quote>}
   */
  getQuote(quoteId) {
    return this.request(`/api/quotes/${encodeURIComponent(quoteId)}`);
  }

  /**
   * Follows a quote over Server-Sent Events (`GET /api/quotes/{id}/events`): `onUpdate` gets the quote now and
   * each time its status or confirmations change (`seen`, `confirming` with `progress` "confirming 1/2",
   * `paid` with `ticket`, `expired`, `refund_due`). Reconnects by itself if the stream drops early.
   * @param {string} quoteId
   * @param {(quote: import("./events").Quote) => void} onUpdate
   * @returns {import("./events").QuoteWatch} `done` resolves with the quote in its terminal status, or rejects
   *   with a DluxApiError (e.g. `quote_not_found`); `close()` stops watching (then `done` never settles).
   */
  watchQuote(quoteId, onUpdate) {
    const abort = new AbortController();
    const url = `${this.baseUrl}/api/quotes/${encodeURIComponent(quoteId)}/events`;
    const client = this;
    const done = (async () => {
      let failures = 0;
      for (;;) {
        let response;
        try {
          response = await client.fetch(url, { headers: { accept: "text/event-stream" }, signal: abort.signal });
        } catch (err) {
          if (abort.signal.aborted) return new Promise(() => {});
          if (++failures > 5) throw new DluxApiError("network_error", `quote stream: ${err && err.message ? err.message : err}`, 0);
          await new Promise((r) => setTimeout(r, 1000));
          continue;
        }
        if (!response.ok) {
          let error = null;
          try {
            error = (await response.json()).error;
          } catch {
            // Not JSON.
          }
          throw new DluxApiError(error ? error.code : "http_error", error ? error.message : `quote stream answered ${response.status}`, response.status);
        }
        const final = await readQuoteStream(response, onUpdate, abort.signal);
        if (final) return final;
        if (abort.signal.aborted) return new Promise(() => {});
        // The stream ended before a terminal status (a restart, a proxy's timeout): pick it up again.
        if (++failures > 5) throw new DluxApiError("network_error", "the quote stream keeps closing early", 0);
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    return { done, close: () => abort.abort() };
  }

  /**
   * The text a wallet signs to enter an event (`GET /api/events/{id}/challenge`).
   * @param {number|string} eventId
   * @param {string} chain
   * @param {string} wallet
   * @returns {Promise<import("./events").Challenge>}
   */
  getChallenge(eventId, chain, wallet) {
    const query = new URLSearchParams({ chain: normalizeChain(chain), wallet });
    return this.request(`/api/events/${encodeURIComponent(eventId)}/challenge?${query}`);
  }

  /**
   * The address of the browser's wallet for `chain`, asking the wallet to connect if needed.
   * @param {string} chain
   * @param {{ account?: string }} [options] Hive: the account (Keychain has no "current account").
   * @returns {Promise<string>}
   */
  async getWalletAddress(chain, options = {}) {
    const symbol = browserWalletChain(chain);
    if (symbol === "sol") {
      const provider = this.solana();
      try {
        if (!provider.publicKey) await provider.connect();
      } catch (err) {
        throw walletFailure(err, "Solana wallet");
      }
      return provider.publicKey.toString();
    }
    if (symbol === "hive") {
      if (!options.account) throw new DluxWalletError("account_required", "Hive Keychain signs for a named account: pass { account }");
      return options.account;
    }
    const ethereum = this.ethereum();
    try {
      const accounts = await ethereum.request({ method: "eth_requestAccounts" });
      if (!accounts || !accounts[0]) throw new DluxWalletError("no_account", "the Ethereum wallet shared no account");
      return accounts[0];
    } catch (err) {
      throw walletFailure(err, "Ethereum wallet");
    }
  }

  /**
   * Signs `message` with the browser's wallet: EIP-1193 `personal_sign` (eth, polygon, bnb), a Phantom-style
   * `window.solana.signMessage` (solana, signature in base58), or Hive Keychain's `requestSignBuffer` with the
   * posting key (hive).
   * @param {string} message
   * @param {string} chain
   * @param {{ account?: string }} [options] Hive: the account to sign as.
   * @returns {Promise<import("./events").SignedMessage>}
   */
  async signWithWallet(message, chain, options = {}) {
    const symbol = browserWalletChain(chain);
    const bytes = new TextEncoder().encode(message);
    if (symbol === "sol") {
      const provider = this.solana();
      const address = await this.getWalletAddress("sol");
      try {
        const signed = await provider.signMessage(bytes, "utf8");
        const signature = signed && signed.signature ? signed.signature : signed;
        return { address, signature: base58(new Uint8Array(signature)), message, chain: symbol };
      } catch (err) {
        throw walletFailure(err, "Solana wallet");
      }
    }
    if (symbol === "hive") {
      const keychain = this.window.hive_keychain;
      if (!keychain || typeof keychain.requestSignBuffer !== "function") {
        throw new DluxWalletError("no_wallet", "no Hive wallet: window.hive_keychain is missing (install Hive Keychain)", "window.hive_keychain");
      }
      const account = options.account || null;
      const response = await new Promise((resolve) => keychain.requestSignBuffer(account, message, "Posting", resolve));
      if (!response || !response.success) {
        const text = (response && (response.message || response.error)) || "Hive Keychain did not sign";
        const code = response && /cancel|declin|reject/i.test(String(response.error || response.message)) ? "rejected" : "wallet_error";
        throw new DluxWalletError(code, `Hive Keychain: ${text}`);
      }
      const address = (response.data && response.data.username) || account;
      return { address, signature: response.result, message, chain: symbol };
    }
    const ethereum = this.ethereum();
    const address = await this.getWalletAddress(symbol);
    try {
      const signature = await ethereum.request({ method: "personal_sign", params: [hex(bytes), address] });
      return { address, signature, message, chain: symbol };
    } catch (err) {
      throw walletFailure(err, "Ethereum wallet");
    }
  }

  /** @returns {any} The EIP-1193 provider, or throws naming what is missing. */
  ethereum() {
    const provider = this.window.ethereum;
    if (!provider || typeof provider.request !== "function") {
      throw new DluxWalletError("no_wallet", "no Ethereum wallet: window.ethereum is missing (install MetaMask or another EIP-1193 wallet)", "window.ethereum");
    }
    return provider;
  }

  /** @returns {any} The Solana provider (Phantom or compatible), or throws naming what is missing. */
  solana() {
    const provider = (this.window.phantom && this.window.phantom.solana) || this.window.solana;
    if (!provider || typeof provider.signMessage !== "function") {
      throw new DluxWalletError("no_wallet", "no Solana wallet: window.solana is missing (install Phantom or another Solana wallet)", "window.solana");
    }
    return provider;
  }

  /**
   * Enters an event with a signed message (`POST /api/events/{id}/join`): a single-use session token, the
   * WebSocket URL and, when the gateway relays media, TURN credentials.
   * @param {number|string} eventId
   * @param {string} address
   * @param {string | import("./events").SignedMessage} signature The signature, or what `signWithWallet`
   *   returned: its message and chain are then used unless `options` names others.
   * @param {{ chain?: string, message?: string, timestamp?: number }} [options] `message` as signed (from
   *   `getChallenge`, or the seed's `Access event {id} at {ms}` with its `timestamp`); `chain` defaults to eth.
   * @returns {Promise<import("./events").JoinResponse>}
   */
  joinEvent(eventId, address, signature, options = {}) {
    if (signature && typeof signature === "object") {
      options = { chain: signature.chain, message: signature.message, ...options };
      address = address || signature.address;
      signature = signature.signature;
    }
    const body = { wallet_address: address, signature, chain: normalizeChain(options.chain || "eth") };
    if (options.message !== undefined) body.message = options.message;
    if (options.timestamp !== undefined) body.timestamp = options.timestamp;
    return this.request(`/api/events/${encodeURIComponent(eventId)}/join`, { method: "POST", body: JSON.stringify(body) });
  }

  /**
   * Reserves a seat of a free event (price 0) for `wallet` (`POST /api/events/{id}/rsvp`): no payment, the
   * wallet signs the event's access challenge instead. Without `options.signature` the challenge is fetched and
   * signed with the browser's wallet. Resolves to `{ created, ticket }`: `created` is false when the wallet
   * already held a ticket for the event (one per wallet). Join afterwards with `joinEvent` and a fresh challenge.
   * A paid event is refused with code `not_free`; a full one with `sold_out`.
   * @param {number|string} eventId
   * @param {string} chain
   * @param {string} wallet
   * @param {{ signature?: string | import("./events").SignedMessage, message?: string, account?: string }} [options]
   *   A signature made elsewhere (a CLI, a phone) with the challenge `message` it signed; `account`: Hive.
   * @returns {Promise<import("./events").RsvpResponse>}
   */
  async rsvp(eventId, chain, wallet, options = {}) {
    let { signature, message } = options;
    if (signature && typeof signature === "object") {
      message = message || signature.message;
      wallet = wallet || signature.address;
      signature = signature.signature;
    }
    if (!signature) {
      const challenge = await this.getChallenge(eventId, chain, wallet);
      const signed = await this.signWithWallet(challenge.message, chain, { account: options.account || wallet });
      ({ signature, message } = signed);
    }
    const body = { wallet_address: wallet, chain: normalizeChain(chain), signature, message };
    return this.request(`/api/events/${encodeURIComponent(eventId)}/rsvp`, { method: "POST", body: JSON.stringify(body) });
  }

  /**
   * Points a `networked-scene` at the event with the `dlux` adapter and the join's credentials, and connects.
   * Works whether the scene's NAF has connected before (`connectOnLoad: false`) or not yet initialised.
   * @param {Element} sceneEl The `<a-scene>`.
   * @param {import("./events").JoinResponse} join What `joinEvent` returned.
   * @param {Record<string, unknown>} [options] More `networked-scene` properties (`audio`, `debug`, …).
   * @returns {Promise<{ clientId: string }>} Resolves once NAF is connected; rejects with a DluxApiError
   *   carrying the close code (`4401`, `4403`, …) if the gateway refuses the socket.
   */
  connectScene(sceneEl, join, options = {}) {
    return attachScene(sceneEl, join, options, this.window);
  }
}

/**
 * Reads `event: quote` frames until a terminal status; returns that quote, or null if the stream ended first.
 * @param {Response} response
 * @param {(quote: any) => void} onUpdate
 * @param {AbortSignal} signal
 */
async function readQuoteStream(response, onUpdate, signal) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return null;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data = [];
        for (const line of frame.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (event !== "quote" || data.length === 0) continue;
        const quote = JSON.parse(data.join("\n"));
        onUpdate(quote);
        if (TERMINAL_QUOTE_STATUSES.includes(quote.status)) return quote;
      }
    }
  } catch (err) {
    if (signal.aborted) return null;
    throw err;
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** The adapter's credentials (docs/PROTOCOL.md, `setJoinCredentials`) from a join response. */
export function joinCredentials(join) {
  const turn = join.turn_credentials;
  const ice_servers = turn && turn.urls ? [{ urls: turn.urls, username: turn.username, credential: turn.credential }] : [];
  return { websocket_url: join.websocket_url, session_token: join.session_token, ice_servers };
}

function attachScene(sceneEl, join, options = {}, win = globalThis) {
  if (!sceneEl || typeof sceneEl.setAttribute !== "function") throw new TypeError("connectScene needs the <a-scene> element");
  if (!join || !join.websocket_url || !join.session_token) throw new TypeError("connectScene needs the response of joinEvent");
  const credentials = joinCredentials(join);
  // The adapter reads these when NAF connects; an adapter that already exists gets them directly.
  win.DLUX_JOIN = credentials;
  const NAF = win.NAF;
  const adapter = NAF && NAF.connection && NAF.connection.adapter;
  if (adapter && typeof adapter.setJoinCredentials === "function") adapter.setJoinCredentials(credentials);
  const body = (sceneEl.ownerDocument || win.document).body;
  const connected = new Promise((resolve, reject) => {
    const onConnected = (e) => {
      cleanup();
      resolve({ clientId: e.detail && e.detail.clientId });
    };
    const onClose = (e) => {
      const detail = e.detail || {};
      cleanup();
      const code = detail.code ? String(detail.code) : "closed";
      reject(new DluxApiError(code, `the gateway closed the connection (${code}${detail.reason ? ": " + detail.reason : ""})`, 0));
    };
    const cleanup = () => {
      body.removeEventListener("connected", onConnected);
      body.removeEventListener("dlux-close", onClose);
    };
    body.addEventListener("connected", onConnected);
    body.addEventListener("dlux-close", onClose);
  });
  const settings = { ...options, adapter: "dlux", room: String(join.event_id), serverURL: join.websocket_url };
  const initialised = sceneEl.components && sceneEl.components["networked-scene"];
  if (initialised) {
    sceneEl.setAttribute("networked-scene", settings);
    sceneEl.emit ? sceneEl.emit("connect", null, false) : sceneEl.dispatchEvent(new CustomEvent("connect"));
  } else {
    sceneEl.setAttribute("networked-scene", { ...settings, connectOnLoad: true });
  }
  return connected;
}

/** The client for the gateway this module was served from. */
export const client = new DluxClient();

/** Makes a client for another gateway or with another `fetch`. */
export function createClient(options) {
  return new DluxClient(options);
}

export const getAvailableEvents = (filters) => client.getAvailableEvents(filters);
export const getEvent = (id) => client.getEvent(id);
export const getCreator = (account) => client.getCreator(account);
export const purchaseEventTicket = (eventId, paymentMethod, walletAddress) =>
  client.purchaseEventTicket(eventId, paymentMethod, walletAddress);
export const getQuote = (quoteId) => client.getQuote(quoteId);
export const watchQuote = (quoteId, onUpdate) => client.watchQuote(quoteId, onUpdate);
export const getChallenge = (eventId, chain, wallet) => client.getChallenge(eventId, chain, wallet);
export const getWalletAddress = (chain, options) => client.getWalletAddress(chain, options);
export const signWithWallet = (message, chain, options) => client.signWithWallet(message, chain, options);
export const rsvp = (eventId, chain, wallet, options) => client.rsvp(eventId, chain, wallet, options);
export const joinEvent = (eventId, address, signature, options) => client.joinEvent(eventId, address, signature, options);
export const connectScene = (sceneEl, join, options) => client.connectScene(sceneEl, join, options);

export default client;
