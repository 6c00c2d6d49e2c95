-- A credited payment that left the chain (a reorganisation deeper than the confirmation policy, a replacement)
-- is reversed: its ticket becomes 'payment_reversed' (joins are refused with that reason). The payment itself
-- goes back to 'orphaned' and its ledger entries are cancelled by compensating 'payment_reversed' entries
-- (nothing is deleted); see `Purchases::reverse_payment`.
ALTER TABLE tickets DROP CONSTRAINT tickets_status_check;
ALTER TABLE tickets ADD CONSTRAINT tickets_status_check
    CHECK (status IN ('valid', 'refunded', 'cancelled', 'banned', 'payment_reversed'));
-- Credited payments still inside their chain's reorganisation window are re-checked by height.
CREATE INDEX payments_chain_height ON payments (chain, block_height);
