-- Sign-on-your-phone pairings: a page that needs a wallet signature (a headset's join, a creator's sign-in)
-- opens one, shows its code as a QR code and as text, and waits on GET /api/pairings/{code}/events with the
-- secret only it holds; the phone opens /pages/pair.html?code=…, signs with its wallet there and posts the
-- signature once. A row goes pending → signed (the phone's one use) → delivered (the waiting page's one read),
-- each step a conditional UPDATE, so a second phone or a second read is refused on any node. Rows are pruned
-- once expired. Keep in step with ../postgres/0005_pairings.sql.

CREATE TABLE pairings (
    code            TEXT PRIMARY KEY,           -- what the phone's link carries (8 characters, no 0/O/1/I)
    secret_hash     TEXT NOT NULL,              -- hex SHA-256 of the waiting page's secret
    purpose         TEXT NOT NULL,              -- join | sign
    event_id        INTEGER,                    -- join: the event to enter
    chain           TEXT NOT NULL,              -- the chain the phone's wallet signs for
    wallet          TEXT,                       -- sign: the account or address that must sign
    message         TEXT,                       -- sign: the exact text to sign
    status          TEXT NOT NULL,              -- pending | signed | delivered
    signed_wallet   TEXT,
    signed_message  TEXT,
    signature       TEXT,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);
CREATE INDEX pairings_expires ON pairings (expires_at);
