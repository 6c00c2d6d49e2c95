-- A refund smaller than its chain's minimum (it would cost more to send than it returns, or could not be sent
-- at all below a dust limit) is recorded, never owed: status 'below_minimum', kept out of the due list.
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt (nothing references it).
CREATE TABLE ledger_entries_new (
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
    status        TEXT NOT NULL CHECK (status IN ('pending', 'due', 'settled', 'cancelled', 'below_minimum')),
    due_at        INTEGER,
    settled_txid  TEXT,
    settled_at    INTEGER,
    created_at    INTEGER NOT NULL,
    UNIQUE (payment_id, kind, reason)
);
INSERT INTO ledger_entries_new (id, event_id, ticket_id, quote_id, payment_id, kind, reason, currency, amount_units,
    recipient, status, due_at, settled_txid, settled_at, created_at)
SELECT id, event_id, ticket_id, quote_id, payment_id, kind, reason, currency, amount_units,
    recipient, status, due_at, settled_txid, settled_at, created_at FROM ledger_entries;
DROP TABLE ledger_entries;
ALTER TABLE ledger_entries_new RENAME TO ledger_entries;
CREATE INDEX ledger_event ON ledger_entries (event_id);
CREATE INDEX ledger_status ON ledger_entries (kind, status);
