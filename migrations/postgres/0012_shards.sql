-- Events bigger than a scene: attendees are placed in shards of at most `shard_size` avatars (default 50; the
-- creator may lower it), with the host and invited speakers on a stage every shard sees (`signaling::shards`).
-- The API allows 1–50; the table only requires 1 or more, so an operator (or the load tests) may set one
-- shard as large as the event. An attendance row records the shard its session was last placed in (NULL: on stage, or before shards).
ALTER TABLE events ADD COLUMN shard_size BIGINT NOT NULL DEFAULT 50 CHECK (shard_size >= 1);
ALTER TABLE attendance_sessions ADD COLUMN shard BIGINT;
