-- Keep in step with ../postgres/0004_door_time_and_challenge_requester.sql.

-- Time an attendee spent in the room after the doors opened but before the event started. `duration_secs`
-- (and tickets.total_duration_secs, which certificates read) counts only time within the event's window.
ALTER TABLE attendance_sessions ADD COLUMN early_secs INTEGER;

-- Who asked for a creator sign-in challenge (the client address): pruning an account's open challenges keeps
-- each asker's newest few, so nobody can evict another's by asking for the same account.
ALTER TABLE creator_login_challenges ADD COLUMN requester TEXT NOT NULL DEFAULT '';
CREATE INDEX creator_login_challenges_requester ON creator_login_challenges (account, requester, created_at);
