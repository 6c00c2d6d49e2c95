-- Keep in step with ../postgres/0009_payout_addresses.sql.

-- Where each creator is paid, per chain: an address checked by the chain's rules and proven by a signature from
-- that wallet. One row per (creator, chain); a change replaces the row and is audited (`payout_address.set`).
-- A payout not yet settled goes to the address its creator has for its chain when it is paid.
CREATE TABLE payout_addresses (
    creator_account TEXT NOT NULL,
    chain           TEXT NOT NULL,
    address         TEXT NOT NULL,
    proven_at       INTEGER NOT NULL,
    PRIMARY KEY (creator_account, chain)
);

-- The address a payout or refund was sent to, written when it is settled.
ALTER TABLE ledger_entries ADD COLUMN paid_to TEXT;
