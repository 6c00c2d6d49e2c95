// Types for the dlux ticketing client served at /sdk/events.js (web/sdk/events.js).

export type ChainName = "eth" | "ethereum" | "pol" | "polygon" | "matic" | "bnb" | "bsc" | "sol" | "solana" | "hive";
export type ChainSymbol = "eth" | "pol" | "bnb" | "sol" | "hive" | "btc" | "xmr";
export type QuoteStatus = "awaiting_payment" | "seen" | "confirming" | "paid" | "expired" | "refund_due" | "cancelled";

export declare const TERMINAL_QUOTE_STATUSES: readonly QuoteStatus[];

/** A refusal from the gateway (`{ "error": { "code", "message" } }`), or `network_error` (status 0). */
export declare class DluxApiError extends Error {
  readonly name: "DluxApiError";
  /** `sold_out`, `quote_not_found`, `no_ticket`, `bad_signature`, …; `network_error`, `http_error`, `invalid_response`. */
  readonly code: string;
  /** HTTP status; 0 when no answer came. */
  readonly status: number;
  constructor(code: string, message: string, status: number);
}

/** A wallet problem in the browser. */
export declare class DluxWalletError extends Error {
  readonly name: "DluxWalletError";
  /** `no_wallet`, `rejected`, `wallet_error`, `unsupported_chain`, `account_required`, `no_account`. */
  readonly code: string;
  /** With `no_wallet`: the global the page lacks, e.g. `window.ethereum`. */
  readonly missing?: string;
  constructor(code: string, message: string, missing?: string);
}

export interface EventFilters {
  /** 1–100, default 20. */
  limit?: number;
  /** `true` (default): upcoming only; `false`: upcoming and live. */
  upcoming?: boolean;
  /** `upcoming`, `live` or `all`; overrides `upcoming`. */
  status?: "upcoming" | "live" | "all";
  category?: string;
  /** USD bounds, inclusive, as decimals ("10", "25.50"). */
  minPrice?: string | number;
  maxPrice?: string | number;
  /** Bounds on the start time: RFC 3339 strings or Dates. */
  from?: string | Date;
  to?: string | Date;
  creator?: string;
  /** Text in title or description. */
  q?: string;
  sort?: "start" | "price" | "popularity";
  /** `next_cursor` of the previous page. */
  cursor?: string;
}

export interface Money {
  currency: string;
  /** Decimal in whole units. */
  amount: string;
}

export interface DluxEvent {
  id: number;
  title: string;
  category: string | null;
  status: "draft" | "published" | "live" | "ended" | "cancelled";
  on_sale: boolean;
  preview: {
    title: string;
    description: string;
    cover_image_url: string | null;
    space: { type: "post" | "document" | "custom"; id: string };
    requirements: { camera: boolean; microphone: boolean; age_restriction: number | null; min_certificate_secs: number | null };
  };
  creator: { account: string; display_name: string | null; rating: Rating };
  price: Money;
  price_usd: string | null;
  prices: Money[];
  supported_crypto: string[];
  max_attendees: number;
  tickets_sold: number;
  seats_held: number;
  seats_left: number;
  event_start: string;
  event_end: string;
  sales_start: string;
  sales_end: string;
  created_at: string;
  cancelled_at: string | null;
}

export interface Rating {
  average: number | null;
  count: number;
}

export interface EventPage {
  items: DluxEvent[];
  next_cursor: string | null;
}

/** A creator's public profile; the gateway may add fields. */
export interface Creator {
  account: string;
  display_name?: string | null;
  rating?: Rating;
  [field: string]: unknown;
}

export interface Ticket {
  ticket_id: number;
  event_id: number;
  token: string;
  access_signature: string;
  chain: string;
  wallet_address: string;
  currency: string;
  amount_paid: string;
  status: string;
  first_access_at: string | null;
  last_access_at: string | null;
  access_count: number;
  total_duration_secs: number;
}

export interface Quote {
  quote_id: string;
  event_id: number;
  status: QuoteStatus;
  payment_address: string;
  amount: string;
  currency: string;
  memo: string | null;
  reference: string | null;
  expires_at: string;
  payment_uri: string | null;
  wallet_address: string;
  confirmations: number;
  confirmations_required: number;
  /** `confirming 1/2` while a payment gathers confirmations. */
  progress: string | null;
  received: string;
  remaining: string;
  usd_rate: string | null;
  /** Whether a seat is held until the quote expires; unreserved quotes get a seat when paid, if one is free. */
  seat_reserved: boolean;
  /** Once paid. */
  ticket: Ticket | null;
}

export interface QuoteWatch {
  /** The quote in its terminal status; rejects with a DluxApiError. Never settles after `close()`. */
  done: Promise<Quote>;
  close(): void;
}

export interface Challenge {
  /** The exact text to sign. */
  message: string;
  nonce: string;
  /** RFC 3339 UTC, e.g. "2026-12-02T12:30:00.000Z". */
  expires_at: string;
  chain: string;
  wallet: string;
}

export interface SignedMessage {
  address: string;
  /** 0x-hex (EVM), base58 (Solana) or Keychain's hex (Hive). */
  signature: string;
  message: string;
  chain: ChainSymbol;
}

export interface TurnCredentials {
  username: string;
  credential: string;
  ttl: number;
  urls: string[];
}

export interface JoinResponse {
  access_granted: boolean;
  event_id: number;
  role: "attendee" | "host";
  ticket_id: number | null;
  websocket_url: string;
  /** Single use, short-lived: connect soon. */
  session_token: string;
  session_expires_at: string;
  turn_credentials: TurnCredentials | null;
}

export interface RsvpResponse {
  /** False: the wallet already held this ticket (one per wallet per event). */
  created: boolean;
  /** An ordinary ticket: `amount_paid` is "0". */
  ticket: Ticket;
}

export interface RsvpOptions {
  /** A signature made elsewhere, over `message` (a challenge from `getChallenge`). */
  signature?: string | SignedMessage;
  message?: string;
  /** Hive: the account to sign as. */
  account?: string;
}

export interface JoinOptions {
  /** Defaults to `eth`. */
  chain?: ChainName;
  /** The signed text (from `getChallenge`, or the seed's form with `timestamp`). */
  message?: string;
  timestamp?: number;
}

export interface AdapterCredentials {
  websocket_url: string;
  session_token: string;
  ice_servers: { urls: string[]; username: string; credential: string }[];
}

export interface ClientOptions {
  /** Defaults to the origin this module was served from. */
  baseUrl?: string;
  fetch?: typeof fetch;
  /** Where wallets are looked up; defaults to the global object. */
  window?: any;
}

export declare class DluxClient {
  readonly baseUrl: string;
  constructor(options?: ClientOptions);
  getAvailableEvents(filters?: EventFilters): Promise<EventPage>;
  getEvent(id: number | string): Promise<DluxEvent>;
  getCreator(account: string): Promise<Creator>;
  purchaseEventTicket(eventId: number | string, paymentMethod: string, walletAddress: string): Promise<Quote>;
  getQuote(quoteId: string): Promise<Quote>;
  watchQuote(quoteId: string, onUpdate: (quote: Quote) => void): QuoteWatch;
  getChallenge(eventId: number | string, chain: ChainName, wallet: string): Promise<Challenge>;
  getWalletAddress(chain: ChainName, options?: { account?: string }): Promise<string>;
  signWithWallet(message: string, chain: ChainName, options?: { account?: string }): Promise<SignedMessage>;
  joinEvent(eventId: number | string, address: string, signature: string | SignedMessage, options?: JoinOptions): Promise<JoinResponse>;
  /** A seat of a free event for `wallet`, proven by signing the access challenge (no payment). */
  rsvp(eventId: number | string, chain: ChainName, wallet: string, options?: RsvpOptions): Promise<RsvpResponse>;
  connectScene(sceneEl: Element, join: JoinResponse, options?: Record<string, unknown>): Promise<{ clientId: string }>;
}

export declare const client: DluxClient;
export declare function createClient(options?: ClientOptions): DluxClient;
export declare function normalizeChain(chain: string): ChainSymbol;
export declare function joinCredentials(join: JoinResponse): AdapterCredentials;

export declare function getAvailableEvents(filters?: EventFilters): Promise<EventPage>;
export declare function getEvent(id: number | string): Promise<DluxEvent>;
export declare function getCreator(account: string): Promise<Creator>;
export declare function purchaseEventTicket(eventId: number | string, paymentMethod: string, walletAddress: string): Promise<Quote>;
export declare function getQuote(quoteId: string): Promise<Quote>;
export declare function watchQuote(quoteId: string, onUpdate: (quote: Quote) => void): QuoteWatch;
export declare function getChallenge(eventId: number | string, chain: ChainName, wallet: string): Promise<Challenge>;
export declare function getWalletAddress(chain: ChainName, options?: { account?: string }): Promise<string>;
export declare function signWithWallet(message: string, chain: ChainName, options?: { account?: string }): Promise<SignedMessage>;
export declare function rsvp(eventId: number | string, chain: ChainName, wallet: string, options?: RsvpOptions): Promise<RsvpResponse>;
export declare function joinEvent(eventId: number | string, address: string, signature: string | SignedMessage, options?: JoinOptions): Promise<JoinResponse>;
export declare function connectScene(sceneEl: Element, join: JoinResponse, options?: Record<string, unknown>): Promise<{ clientId: string }>;

export default client;
