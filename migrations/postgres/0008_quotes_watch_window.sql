-- Watchers read what to watch from the store: open quotes and quotes closed within the watch window
-- (`Purchases::watched_quotes`: by chain, expiry or last change).
CREATE INDEX quotes_chain_expires ON quotes (chain, expires_at);
CREATE INDEX quotes_chain_updated ON quotes (chain, updated_at);
