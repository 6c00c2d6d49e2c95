//! Where each attendee of a sharded event is placed, cluster-wide.
//!
//! On one node, `signaling::shards` places a joiner under the room's lock. With several nodes that lock is
//! per node, so each would fill "shard 0" on its own. Here the same rules run in Redis, inside the scripts
//! that already own the room's seats ([`crate::seats`]): a joiner's shard is decided by the claim that
//! grants its seat, so concurrent joins through any node never overfill a shard, and a shard number means
//! the same group of people on every node.
//!
//! Two keys per room hold the table: `shards` (shard → attendees off stage placed there) and `groups`
//! (group code → its shard). Each member's placement is in its roster entry (`p` the shard, `t` on stage),
//! so the counts are exactly the roster's attendees off stage per shard: every script that adds, removes
//! or moves a roster entry changes the counts in the same step (claim, supersede, release, a dead node's
//! eviction, a move).
//!
//! The rules are `ShardTable`'s: fill the fullest open shard with room, keep a group together while its
//! shard has room, open the lowest closed shard; a superseding session keeps its seat's shard and stage
//! place; a shard whose count falls to zero is closed and its groups forgotten.

use crate::{Broker, ClusterError, ClusterStats, Result};
use redis::Script;
use signaling::shards::MAX_GROUP_CHARS;
use signaling::{RoomId, ShardError};
use std::sync::OnceLock;

/// How a joiner asks to be placed (the gateway's `signaling::Placement`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeatPlacement {
    /// Most attendees off stage per shard; 0: not sharded (everyone in shard 0).
    pub shard_size: u32,
    pub group: Option<String>,
    /// Hosts, and a session that must stay on stage.
    pub stage: bool,
    /// The shard to keep while it has room (this node's peers claimed again after the broker restarted).
    pub prefer: Option<u32>,
}

impl SeatPlacement {
    pub(crate) fn group_arg(&self) -> String {
        self.group.as_deref().map(|g| g.chars().take(MAX_GROUP_CHARS).collect()).unwrap_or_default()
    }
}

/// A member's place: its shard and whether it is on stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Placed {
    pub shard: u32,
    pub stage: bool,
}

/// Lua shared by the seat and placement scripts: `ShardTable` over the `shards` and `groups` hashes.
pub(crate) const SHARD_TABLE_LUA: &str = r#"
local function shard_counts(key)
    local counts = {}
    local flat = redis.call('HGETALL', key)
    for i = 1, #flat, 2 do counts[tonumber(flat[i])] = tonumber(flat[i + 1]) end
    return counts
end
local function shard_limit(size)
    if size == 0 then return math.huge end
    return size
end
local function fullest_with_room(counts, limit, except)
    local best, best_n = nil, -1
    for s, n in pairs(counts) do
        if s ~= except and n > 0 and n < limit and (n > best_n or (n == best_n and s < best)) then
            best, best_n = s, n
        end
    end
    return best
end
local function lowest_closed(counts)
    local s = 0
    while (counts[s] or 0) > 0 do s = s + 1 end
    return s
end
local function shard_add(shards_key, s)
    redis.call('HINCRBY', shards_key, s, 1)
end
local function shard_sub(shards_key, groups_key, s)
    if tonumber(redis.call('HINCRBY', shards_key, s, -1)) <= 0 then
        redis.call('HDEL', shards_key, s)
        local flat = redis.call('HGETALL', groups_key)
        for i = 1, #flat, 2 do
            if tonumber(flat[i + 1]) == s then redis.call('HDEL', groups_key, flat[i]) end
        end
    end
end
local function place_attendee(counts, limit, groups_key, group, prefer)
    local function has_room(s) return (counts[s] or 0) < limit end
    local shard = nil
    if prefer and has_room(prefer) then shard = prefer end
    if not shard and group ~= '' then
        local g = tonumber(redis.call('HGET', groups_key, group) or '')
        if g and has_room(g) then shard = g end
    end
    if not shard then shard = fullest_with_room(counts, limit, nil) end
    if not shard then shard = lowest_closed(counts) end
    if group ~= '' then redis.call('HSET', groups_key, group, shard) end
    return shard
end
local function view_for_stage(counts, groups_key, group)
    if group ~= '' then
        local g = tonumber(redis.call('HGET', groups_key, group) or '')
        if g and (counts[g] or 0) > 0 then return g end
    end
    local best, best_n = 0, 0
    for s, n in pairs(counts) do
        if n > best_n or (n == best_n and n > 0 and s < best) then best, best_n = s, n end
    end
    return best
end
-- A roster entry's placement is counted when it is an attendee (`k`) off stage.
local function counted_in(m)
    return m['k'] == true and m['t'] ~= true
end
"#;

/// A script with the shard table's functions in front of `body`.
pub(crate) fn with_table(body: &str) -> Script {
    Script::new(&format!("{SHARD_TABLE_LUA}\n{body}"))
}

fn move_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| {
        with_table(
            r#"
            -- KEYS: members, shards, groups, shard size. ARGV: client id, 'switch' or 'stage', target shard or
            -- stage flag ('' none). Returns {outcome, shard, stage}: 0 moved, 1 already there, -1 not in the
            -- room, -2 shard full, -3 no such shard, -4 no other shard, -5 forbidden (a host).
            local raw = redis.call('HGET', KEYS[1], ARGV[1])
            if not raw then return {-1, 0, 0} end
            local m = cjson.decode(raw)
            local current = tonumber(m['p'] or 0)
            local stage = m['t'] == true
            local counts = shard_counts(KEYS[2])
            local limit = shard_limit(tonumber(redis.call('GET', KEYS[4]) or '0'))
            local function count(s) return counts[s] or 0 end
            local target, on = nil, stage
            if ARGV[2] == 'switch' then
                local to = tonumber(ARGV[3])
                if to == current then return {1, current, stage and 1 or 0} end
                if to and stage then
                    if count(to) == 0 then return {-3, to, 0} end
                    target = to
                elseif to then
                    if count(to) == 0 and to ~= lowest_closed(counts) then return {-3, to, 0} end
                    if count(to) >= limit then return {-2, to, 0} end
                    target = to
                elseif stage then
                    local above, lowest = nil, nil
                    for s, n in pairs(counts) do
                        if n > 0 then
                            if s > current and (not above or s < above) then above = s end
                            if not lowest or s < lowest then lowest = s end
                        end
                    end
                    target = above or lowest
                    if not target or target == current then return {-4, 0, 0} end
                else
                    target = fullest_with_room(counts, limit, current)
                    if not target then
                        if count(current) <= 1 then return {-4, 0, 0} end
                        target = lowest_closed(counts)
                    end
                end
            else
                if m['k'] ~= true then return {-5, 0, 0} end
                on = ARGV[3] == '1'
                if on == stage then return {1, current, stage and 1 or 0} end
                if on or count(current) < limit then
                    target = current
                else
                    target = fullest_with_room(counts, limit, nil) or lowest_closed(counts)
                end
            end
            if counted_in(m) then shard_sub(KEYS[2], KEYS[3], current) end
            m['p'] = target
            m['t'] = on
            if counted_in(m) then shard_add(KEYS[2], target) end
            redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(m))
            return {0, target, on and 1 or 0}
            "#,
        )
    })
}

/// Moves between shards and on and off the stage, decided in Redis.
#[derive(Debug, Clone)]
pub struct Placements {
    broker: Broker,
}

/// What a move did: the member's place now, and whether it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    pub placed: Placed,
    pub changed: bool,
}

impl Placements {
    pub fn new(broker: Broker) -> Self {
        Self { broker }
    }

    /// `switchShard`: to `to`, or the fullest other open shard with room (`Hub::switch_shard`'s rules; the
    /// shard size is the one the room's claims gave).
    pub async fn switch_shard(
        &self,
        room: RoomId,
        client_id: &str,
        to: Option<u32>,
    ) -> Result<Result<Moved, ShardError>> {
        self.run(room, client_id, "switch", to.map(|s| s.to_string()).unwrap_or_default()).await
    }

    /// Puts an attendee on the stage or takes it off (`Hub::set_stage`'s rules).
    pub async fn set_stage(&self, room: RoomId, client_id: &str, on: bool) -> Result<Result<Moved, ShardError>> {
        self.run(room, client_id, "stage", if on { "1" } else { "0" }.to_owned()).await
    }

    async fn run(&self, room: RoomId, client_id: &str, op: &str, target: String) -> Result<Result<Moved, ShardError>> {
        let keys = &self.broker.keys;
        let mut con = self.broker.connection();
        let result = move_script()
            .key(keys.room_members(room))
            .key(keys.room_shards(room))
            .key(keys.room_groups(room))
            .key(keys.room_shard_size(room))
            .arg(client_id)
            .arg(op)
            .arg(target)
            .invoke_async::<(i64, i64, i64)>(&mut con)
            .await;
        let (outcome, shard, stage) = self.broker.observe(result.map_err(ClusterError::from))?;
        let placed = Placed { shard: shard as u32, stage: stage == 1 };
        if outcome == 0 {
            ClusterStats::add(&self.broker.stats.placement_moves, 1);
        }
        Ok(match outcome {
            0 => Ok(Moved { placed, changed: true }),
            1 => Ok(Moved { placed, changed: false }),
            -1 => Err(ShardError::NotInRoom),
            -2 => Err(ShardError::ShardFull(shard as u32)),
            -3 => Err(ShardError::NoSuchShard(shard as u32)),
            -4 => Err(ShardError::NoOtherShard),
            -5 => Err(ShardError::Forbidden),
            other => return Err(ClusterError::Protocol(format!("move outcome {other}"))),
        })
    }

    /// Open shards and their attendees off stage, cluster-wide, lowest index first.
    pub async fn occupancy(&self, room: RoomId) -> Result<Vec<(u32, u32)>> {
        let mut con = self.broker.connection();
        let result = redis::cmd("HGETALL")
            .arg(self.broker.keys.room_shards(room))
            .query_async::<std::collections::BTreeMap<u32, u32>>(&mut con)
            .await;
        let counts = self.broker.observe(result.map_err(ClusterError::from))?;
        Ok(counts.into_iter().filter(|(_, n)| *n > 0).collect())
    }
}
