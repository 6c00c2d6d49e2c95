-- A refund smaller than its chain's minimum (it would cost more to send than it returns, or could not be sent
-- at all below a dust limit) is recorded, never owed: status 'below_minimum', kept out of the due list.
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_status_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_status_check
    CHECK (status IN ('pending', 'due', 'settled', 'cancelled', 'below_minimum'));
