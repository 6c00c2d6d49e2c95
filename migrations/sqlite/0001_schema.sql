-- The whole product's schema, SQLite flavour. Keep in step with ../postgres/0001_schema.sql: same tables, same
-- columns, same constraints; only identity columns and type names differ.
--
-- Conventions: times are unix milliseconds (INTEGER); money is integer base units of the row's currency stored
-- as decimal TEXT (wei does not fit 64 bits); booleans are INTEGER 0/1; every table that money passes through
-- has a unique key that makes double credit impossible.

CREATE TABLE creators (
    account       TEXT PRIMARY KEY,               -- Hive account name
    tier          TEXT NOT NULL DEFAULT 'free' CHECK (tier IN ('free', 'premium', 'pro')),
    tier_until    INTEGER,                        -- NULL: no expiry
    display_name  TEXT,
    bio           TEXT,
    avatar_url    TEXT,
    links         TEXT NOT NULL DEFAULT '[]',     -- JSON array of URLs
    webhook_url   TEXT,
    webhook_secret TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE events (
    id                 INTEGER PRIMARY KEY,
    creator_account    TEXT NOT NULL REFERENCES creators(account),
    title              TEXT NOT NULL,
    description        TEXT NOT NULL DEFAULT '',
    cover_image_url    TEXT,
    space_type         TEXT NOT NULL CHECK (space_type IN ('post', 'document', 'custom')),
    space_id           TEXT NOT NULL,
    price_units        TEXT NOT NULL,             -- base units of price_currency (cents for USD)
    price_currency     TEXT NOT NULL,
    supported_crypto   TEXT NOT NULL,             -- comma-separated currency symbols
    max_attendees      INTEGER NOT NULL CHECK (max_attendees >= 1),
    seats_held         INTEGER NOT NULL DEFAULT 0 CHECK (seats_held >= 0),   -- open quotes
    tickets_sold       INTEGER NOT NULL DEFAULT 0 CHECK (tickets_sold >= 0), -- issued, not refunded
    event_start        INTEGER NOT NULL,
    event_end          INTEGER NOT NULL,
    sales_start        INTEGER NOT NULL,
    sales_end          INTEGER NOT NULL,
    require_camera     INTEGER NOT NULL DEFAULT 0,
    require_microphone INTEGER NOT NULL DEFAULT 0,
    age_restriction    INTEGER,
    category           TEXT,
    status             TEXT NOT NULL DEFAULT 'published' CHECK (status IN ('draft', 'published', 'cancelled')),
    min_certificate_secs INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    cancelled_at       INTEGER,
    -- The last line of defence against overselling: no write may ever hold more seats than exist.
    CHECK (seats_held + tickets_sold <= max_attendees),
    CHECK (event_end > event_start)
);
CREATE INDEX events_start ON events (event_start);
CREATE INDEX events_creator ON events (creator_account);

-- A quote is a payment request: one buyer wallet, one currency, an amount locked until expires_at.
CREATE TABLE quotes (
    id                     TEXT PRIMARY KEY,
    event_id               INTEGER NOT NULL REFERENCES events(id),
    currency               TEXT NOT NULL,
    chain                  TEXT NOT NULL,
    wallet_address         TEXT NOT NULL,          -- pays, and later signs to enter
    amount_units           TEXT NOT NULL,
    usd_rate               TEXT,                   -- decimal USD per whole unit, when priced in USD
    payment_address        TEXT NOT NULL,
    memo                   TEXT,
    reference              TEXT,                   -- Solana Pay reference, EVM reference, …
    derivation_index       INTEGER,                -- BIP-32 index or Monero subaddress index
    status                 TEXT NOT NULL DEFAULT 'awaiting_payment'
        CHECK (status IN ('awaiting_payment', 'seen', 'confirming', 'paid', 'expired', 'refund_due', 'cancelled')),
    holds_seat             INTEGER NOT NULL DEFAULT 1,
    received_units         TEXT NOT NULL DEFAULT '0',
    confirmations          INTEGER NOT NULL DEFAULT 0,
    confirmations_required INTEGER NOT NULL,
    created_at             INTEGER NOT NULL,
    expires_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL
);
CREATE INDEX quotes_event ON quotes (event_id);
CREATE INDEX quotes_open ON quotes (status, expires_at);
CREATE UNIQUE INDEX quotes_chain_address_ref ON quotes (chain, payment_address, reference);
CREATE UNIQUE INDEX quotes_chain_derivation ON quotes (chain, derivation_index);

-- Every on-chain transfer a watcher reports. (chain, txid, output_index) is unique: a payment is credited once.
CREATE TABLE payments (
    id             INTEGER PRIMARY KEY,
    chain          TEXT NOT NULL,
    txid           TEXT NOT NULL,
    output_index   INTEGER NOT NULL,
    quote_id       TEXT REFERENCES quotes(id),
    currency       TEXT NOT NULL,
    amount_units   TEXT NOT NULL,
    from_address   TEXT,
    to_address     TEXT NOT NULL,
    memo           TEXT,
    block_height   INTEGER,
    block_hash     TEXT,
    confirmations  INTEGER NOT NULL DEFAULT 0,
    status         TEXT NOT NULL CHECK (status IN ('seen', 'confirming', 'confirmed', 'orphaned', 'credited', 'refund_due')),
    first_seen_at  INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (chain, txid, output_index)
);
CREATE INDEX payments_quote ON payments (quote_id);

CREATE TABLE tickets (
    id                 INTEGER PRIMARY KEY,
    event_id           INTEGER NOT NULL REFERENCES events(id),
    quote_id           TEXT NOT NULL UNIQUE REFERENCES quotes(id),   -- one ticket per quote, ever
    token              TEXT NOT NULL UNIQUE,
    chain              TEXT NOT NULL,
    wallet_address     TEXT NOT NULL,
    currency           TEXT NOT NULL,
    amount_paid_units  TEXT NOT NULL,
    access_signature   TEXT NOT NULL,
    status             TEXT NOT NULL DEFAULT 'valid' CHECK (status IN ('valid', 'refunded', 'cancelled', 'banned')),
    first_access_at    INTEGER,
    last_access_at     INTEGER,
    access_count       INTEGER NOT NULL DEFAULT 0,
    total_duration_secs INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX tickets_wallet ON tickets (wallet_address, chain);
CREATE INDEX tickets_event ON tickets (event_id);

-- Money movements owed or made: commission, creator payout, refund. Amounts in base units of currency.
CREATE TABLE ledger_entries (
    id            INTEGER PRIMARY KEY,
    event_id      INTEGER REFERENCES events(id),   -- NULL for a payment naming no known event
    ticket_id     INTEGER REFERENCES tickets(id),
    quote_id      TEXT REFERENCES quotes(id),
    payment_id    INTEGER REFERENCES payments(id),
    kind          TEXT NOT NULL CHECK (kind IN ('commission', 'payout', 'refund')),
    -- why the entry exists: sale, overpaid, underpaid, late, event_cancelled
    reason        TEXT NOT NULL,
    currency      TEXT NOT NULL,
    amount_units  TEXT NOT NULL,
    recipient     TEXT,                 -- creator account or refund wallet
    status        TEXT NOT NULL CHECK (status IN ('pending', 'due', 'settled', 'cancelled')),
    due_at        INTEGER,
    settled_txid  TEXT,
    settled_at    INTEGER,
    created_at    INTEGER NOT NULL,
    UNIQUE (payment_id, kind, reason)
);
CREATE INDEX ledger_event ON ledger_entries (event_id);
CREATE INDEX ledger_status ON ledger_entries (kind, status);

-- One row per admission to a room.
CREATE TABLE attendance_sessions (
    id                 TEXT PRIMARY KEY,
    event_id           INTEGER NOT NULL REFERENCES events(id),
    ticket_id          INTEGER REFERENCES tickets(id),   -- NULL for the host
    wallet             TEXT NOT NULL,                    -- address, or its hash when anonymised
    role               TEXT NOT NULL CHECK (role IN ('attendee', 'host')),
    client_id          TEXT NOT NULL,
    node_id            TEXT NOT NULL,
    joined_at          INTEGER NOT NULL,
    left_at            INTEGER,
    duration_secs      INTEGER,
    end_reason         TEXT,
    chat_messages      INTEGER NOT NULL DEFAULT 0,
    voice_secs         INTEGER NOT NULL DEFAULT 0,
    screen_shared      INTEGER NOT NULL DEFAULT 0,
    screen_share_secs  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX attendance_event ON attendance_sessions (event_id, joined_at);
CREATE INDEX attendance_open ON attendance_sessions (node_id, left_at);

-- Access challenges and seed-style signatures are accepted once: the key is the nonce or a signature hash.
CREATE TABLE used_challenges (
    key         TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('nonce', 'signature', 'session_token')),
    event_id    INTEGER,
    wallet      TEXT,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER NOT NULL
);
CREATE INDEX used_challenges_expiry ON used_challenges (expires_at);

CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    event_id     INTEGER,
    subject      TEXT,
    detail       TEXT NOT NULL DEFAULT '{}',
    remote_addr  TEXT
);
CREATE INDEX audit_event ON audit_log (event_id, at);

-- Next BIP-32 / subaddress index per chain; one atomic UPDATE … RETURNING hands out each index once.
CREATE TABLE derivation_counters (
    chain       TEXT PRIMARY KEY,
    next_index  INTEGER NOT NULL
);

CREATE TABLE watcher_cursors (
    chain       TEXT PRIMARY KEY,
    height      INTEGER NOT NULL,
    block_hash  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE ratings (
    ticket_id        INTEGER PRIMARY KEY REFERENCES tickets(id),   -- one rating per ticket
    creator_account  TEXT NOT NULL REFERENCES creators(account),
    event_id         INTEGER NOT NULL REFERENCES events(id),
    wallet_address   TEXT NOT NULL,
    stars            INTEGER NOT NULL CHECK (stars BETWEEN 1 AND 5),
    comment          TEXT,
    created_at       INTEGER NOT NULL
);
CREATE INDEX ratings_creator ON ratings (creator_account);
