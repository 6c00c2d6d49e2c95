-- Rooms' persistent networked-aframe entities (issue 26): what a scene marks `persistent: true`, kept by the
-- server so that a late joiner sees it after its creator left, and after a restart. One row per entity: NAF's
-- sync data with every component seen so far (JSON), written behind the relay by gateway::room_state and
-- loaded before a room's first admission. Bounded per room by [signaling] max_persistent_entities.
-- Keep in step with ../sqlite/0010_room_entities.sql.

CREATE TABLE room_entities (
    event_id        BIGINT NOT NULL,            -- the room
    network_id      TEXT NOT NULL,              -- NAF's networkId
    owner           TEXT NOT NULL,              -- NAF client id of its owner when last written
    data            TEXT NOT NULL,              -- NAF sync data (JSON)
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (event_id, network_id)
);
