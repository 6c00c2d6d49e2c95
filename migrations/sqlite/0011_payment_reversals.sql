-- A credited payment that left the chain (a reorganisation deeper than the confirmation policy, a replacement)
-- is reversed: its ticket becomes 'payment_reversed' (joins are refused with that reason). The payment itself
-- goes back to 'orphaned' and its ledger entries not yet paid are cancelled (nothing is deleted); see
-- `ticketing::purchases::reversal`.
--
-- SQLite cannot change a CHECK constraint in place, and the usual rebuild (new table, copy, drop, rename) does
-- not work for `tickets` inside the migration's transaction with foreign keys on: other tables reference it, and
-- the drop or rename rewrites or breaks those references. This change only *widens* the CHECK (every stored row
-- stays valid), which is the case SQLite's documentation allows through `writable_schema` ("Making Other Kinds
-- Of Table Schema Changes", ALTER TABLE): the stored CREATE TABLE text is edited, and the DDL below bumps the
-- schema cookie so every other connection re-reads it. The connection that ran it is closed after the
-- migrations (`Store::migrate`), since it keeps its own copy of the old schema.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
SET sql = replace(sql, 'CHECK (status IN (''valid'', ''refunded'', ''cancelled'', ''banned''))',
    'CHECK (status IN (''valid'', ''refunded'', ''cancelled'', ''banned'', ''payment_reversed''))')
WHERE type = 'table' AND name = 'tickets';
PRAGMA writable_schema = OFF;
-- Credited payments still inside their chain's reorganisation window are re-checked by height.
CREATE INDEX payments_chain_height ON payments (chain, block_height);
