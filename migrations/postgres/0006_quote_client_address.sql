-- Keep in step with ../sqlite/0006_quote_client_address.sql.

-- The client address (after trusted_proxies) that asked for a quote: open quotes are limited per client address
-- and per buyer wallet for each event, counted from this table so the limit holds on every node. NULL for quotes
-- made without an HTTP client (the ticketing crate's own callers, quotes made before this migration).
ALTER TABLE quotes ADD COLUMN client_address TEXT;
CREATE INDEX quotes_event_client ON quotes (event_id, client_address, status, expires_at);
CREATE INDEX quotes_event_wallet ON quotes (event_id, wallet_address, status, expires_at);
