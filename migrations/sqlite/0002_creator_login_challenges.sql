-- Creator sign-in challenges: issued by GET /api/creators/login/challenge, consumed by the first sign-in that
-- presents a valid Hive signature over the exact message (the nonce then also goes into used_challenges, so a
-- replay is refused even if this row were to come back). Expired rows are pruned when new ones are issued.
-- Keep in step with ../postgres/0002_creator_login_challenges.sql.

CREATE TABLE creator_login_challenges (
    nonce       TEXT PRIMARY KEY,
    account     TEXT NOT NULL,                  -- Hive account name the challenge was issued for
    message     TEXT NOT NULL,                  -- the exact text to sign
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX creator_login_challenges_account ON creator_login_challenges (account, expires_at);
