-- Events bigger than a scene: attendees are placed in shards of at most `shard_size` avatars (default 50; the
-- creator may lower it), with the host and invited speakers on a stage every shard sees (`signaling::shards`).
-- An attendance row records the shard its session was last placed in (NULL: on stage, or before shards).
ALTER TABLE events ADD COLUMN shard_size INTEGER NOT NULL DEFAULT 50 CHECK (shard_size BETWEEN 1 AND 50);
ALTER TABLE attendance_sessions ADD COLUMN shard INTEGER;
