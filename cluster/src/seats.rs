//! Who holds which seat, cluster-wide.
//!
//! A seat is what one ticket (or host login) may hold once: the gateway's seat key. Each
//! room has three keys: seats (seat key → client id), members (client id → member JSON)
//! and the count of seats that count against capacity (hosts don't). Every change is one
//! Lua script, so 1,000 joins racing over three nodes can't overfill a room, and a seat
//! claimed twice is held by the newer claim only: the older holder is returned so its node
//! can close that connection ("superseded").
//!
//! The members hash doubles as the room's cross-node roster: a joiner's occupant list and
//! the creator's live feed read it. Each entry also says where the member is placed in the
//! event's shards, decided by the same scripts (`placement.rs`).

use crate::placement::{Placed, SeatPlacement};
use crate::{Broker, ClusterError, ClusterStats, Result};
use redis::Script;
use serde::{Deserialize, Serialize};
use signaling::RoomId;
use std::sync::OnceLock;

/// One peer of a room, wherever it is connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node holding the connection.
    #[serde(rename = "n")]
    pub node: String,
    #[serde(rename = "c")]
    pub client_id: String,
    #[serde(rename = "s")]
    pub seat_key: String,
    /// Counted against the room's capacity (attendees are; hosts are not).
    #[serde(rename = "k")]
    pub counted: bool,
    /// What the gateway wants the others to know (display name, role, ...), opaque here.
    #[serde(rename = "i")]
    pub info: serde_json::Value,
    /// Its shard, decided by the claim (`placement.rs`); what a claim sends is ignored.
    #[serde(rename = "p", default)]
    pub shard: u32,
    /// Whether it is on the stage, in every shard.
    #[serde(rename = "t", default)]
    pub stage: bool,
}

#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub room: RoomId,
    pub capacity: u32,
    pub member: Member,
    /// How the member is placed in the event's shards (`placement.rs`).
    pub placement: SeatPlacement,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The seat is this member's; `superseded` held it before and must be closed by its node. `placed` is
    /// where it goes: the hub admits it there without deciding again.
    Granted { superseded: Option<Member>, placed: Placed },
    /// Every counted seat is taken.
    Full { capacity: u32 },
}

/// A seat taken back from a dead node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvictedSeat {
    pub room: RoomId,
    pub member: Member,
}

fn claim_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| {
        crate::placement::with_table(
            r#"
            -- KEYS: seats, members, count, this node's members set, shards, groups, shard size
            -- ARGV: seat key, client id, member json, counted (0/1), capacity, room id, node key prefix,
            --       shard size, group ('' none), on stage (0/1), preferred shard ('' none)
            local prev_client = redis.call('HGET', KEYS[1], ARGV[1])
            local prev = false
            if prev_client then
                prev = redis.call('HGET', KEYS[2], prev_client)
            end
            if not prev_client and ARGV[4] == '1' then
                local n = tonumber(redis.call('GET', KEYS[3]) or '0')
                if n >= tonumber(ARGV[5]) then
                    return {0, '', 0, 0}
                end
                redis.call('INCR', KEYS[3])
            end
            local prefer = tonumber(ARGV[11])
            local stage = ARGV[10] == '1'
            if prev then
                -- The superseded session's place passes to this one: its shard and its place on the stage.
                local p = cjson.decode(prev)
                if counted_in(p) then shard_sub(KEYS[5], KEYS[6], tonumber(p['p'] or 0)) end
                prefer = tonumber(p['p'] or 0)
                stage = stage or p['t'] == true
            end
            if prev_client and prev_client ~= ARGV[2] then
                redis.call('HDEL', KEYS[2], prev_client)
                if prev then
                    local p = cjson.decode(prev)
                    redis.call('SREM', ARGV[7] .. p['n'] .. ':members', ARGV[6] .. '\31' .. prev_client)
                end
            end
            redis.call('SET', KEYS[7], ARGV[8])
            local m = cjson.decode(ARGV[3])
            local counts = shard_counts(KEYS[5])
            local shard
            if stage then
                shard = prefer or view_for_stage(counts, KEYS[6], ARGV[9])
            else
                shard = place_attendee(counts, shard_limit(tonumber(ARGV[8])), KEYS[6], ARGV[9], prefer)
            end
            m['p'] = shard
            m['t'] = stage
            if counted_in(m) then shard_add(KEYS[5], shard) end
            redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
            redis.call('HSET', KEYS[2], ARGV[2], cjson.encode(m))
            redis.call('SADD', KEYS[4], ARGV[6] .. '\31' .. ARGV[2])
            if prev_client == ARGV[2] then
                return {1, '', shard, stage and 1 or 0}
            end
            return {1, prev or '', shard, stage and 1 or 0}
            "#,
        )
    })
}

fn release_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| {
        crate::placement::with_table(
            r#"
            -- KEYS: seats, members, count, this node's members set, shards, groups, shard size.
            -- ARGV: client id, node id, room id
            local raw = redis.call('HGET', KEYS[2], ARGV[1])
            if not raw then return 0 end
            local m = cjson.decode(raw)
            if m['n'] ~= ARGV[2] then return 0 end
            redis.call('HDEL', KEYS[2], ARGV[1])
            redis.call('SREM', KEYS[4], ARGV[3] .. '\31' .. ARGV[1])
            if counted_in(m) then shard_sub(KEYS[5], KEYS[6], tonumber(m['p'] or 0)) end
            if redis.call('HGET', KEYS[1], m['s']) == ARGV[1] then
                redis.call('HDEL', KEYS[1], m['s'])
                if m['k'] then
                    local n = tonumber(redis.call('DECR', KEYS[3]))
                    if n <= 0 then redis.call('DEL', KEYS[3]) end
                end
            end
            if redis.call('HLEN', KEYS[2]) == 0 then redis.call('DEL', KEYS[7]) end
            return 1
            "#,
        )
    })
}

fn evict_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| {
        crate::placement::with_table(
            r#"
            -- KEYS: the dead node's members set. ARGV: dead node id, room key prefix
            local out = {}
            for _, entry in ipairs(redis.call('SMEMBERS', KEYS[1])) do
                local sep = string.find(entry, '\31', 1, true)
                if sep then
                    local room = string.sub(entry, 1, sep - 1)
                    local client = string.sub(entry, sep + 1)
                    local base = ARGV[2] .. room
                    local raw = redis.call('HGET', base .. ':members', client)
                    if raw then
                        local m = cjson.decode(raw)
                        if m['n'] == ARGV[1] then
                            redis.call('HDEL', base .. ':members', client)
                            if counted_in(m) then
                                shard_sub(base .. ':shards', base .. ':groups', tonumber(m['p'] or 0))
                            end
                            if redis.call('HGET', base .. ':seats', m['s']) == client then
                                redis.call('HDEL', base .. ':seats', m['s'])
                                if m['k'] then
                                    local n = tonumber(redis.call('DECR', base .. ':count'))
                                    if n <= 0 then redis.call('DEL', base .. ':count') end
                                end
                            end
                            if redis.call('HLEN', base .. ':members') == 0 then
                                redis.call('DEL', base .. ':shard_size')
                            end
                            table.insert(out, room)
                            table.insert(out, raw)
                        end
                    end
                end
            end
            redis.call('DEL', KEYS[1])
            return out
            "#,
        )
    })
}

/// Cluster-wide seats of every room.
#[derive(Debug, Clone)]
pub struct Seats {
    broker: Broker,
}

impl Seats {
    pub fn new(broker: Broker) -> Self {
        Self { broker }
    }

    /// Takes `request.member.seat_key` in `request.room` for this node, atomically: refused when every
    /// counted seat is taken, and superseding whoever held the same seat key before.
    pub async fn claim(&self, request: &ClaimRequest) -> Result<Claim> {
        let keys = &self.broker.keys;
        let member = &request.member;
        let json = serde_json::to_string(member).map_err(|e| ClusterError::Protocol(e.to_string()))?;
        let mut con = self.broker.connection();
        let result = claim_script()
            .key(keys.room_seats(request.room))
            .key(keys.room_members(request.room))
            .key(keys.room_count(request.room))
            .key(keys.node_members(&member.node))
            .key(keys.room_shards(request.room))
            .key(keys.room_groups(request.room))
            .key(keys.room_shard_size(request.room))
            .arg(&member.seat_key)
            .arg(&member.client_id)
            .arg(json)
            .arg(if member.counted { "1" } else { "0" })
            .arg(request.capacity)
            .arg(request.room)
            .arg(keys.node_prefix())
            .arg(request.placement.shard_size)
            .arg(request.placement.group_arg())
            .arg(if request.placement.stage { "1" } else { "0" })
            .arg(request.placement.prefer.map(|s| s.to_string()).unwrap_or_default())
            .invoke_async::<(i64, String, i64, i64)>(&mut con)
            .await;
        let (granted, previous, shard, stage) = self.broker.observe(result.map_err(ClusterError::from))?;
        if granted == 0 {
            return Ok(Claim::Full { capacity: request.capacity });
        }
        let superseded = if previous.is_empty() {
            None
        } else {
            Some(serde_json::from_str(&previous).map_err(|e| ClusterError::Protocol(e.to_string()))?)
        };
        ClusterStats::add(&self.broker.stats.placements, 1);
        Ok(Claim::Granted { superseded, placed: Placed { shard: shard as u32, stage: stage == 1 } })
    }

    /// Gives the seat back, if this node's `client_id` still holds it (a superseded connection's
    /// release changes nothing). Returns whether anything was released.
    pub async fn release(&self, room: RoomId, client_id: &str) -> Result<bool> {
        let keys = &self.broker.keys;
        let node = &self.broker.config.node_id;
        let mut con = self.broker.connection();
        let result = release_script()
            .key(keys.room_seats(room))
            .key(keys.room_members(room))
            .key(keys.room_count(room))
            .key(keys.node_members(node))
            .key(keys.room_shards(room))
            .key(keys.room_groups(room))
            .key(keys.room_shard_size(room))
            .arg(client_id)
            .arg(node)
            .arg(room)
            .invoke_async::<i64>(&mut con)
            .await;
        Ok(self.broker.observe(result.map_err(ClusterError::from))? == 1)
    }

    /// Whether `client_id` still holds its seat in `room` (a newer claim of the same seat removes it).
    pub async fn holds(&self, room: RoomId, client_id: &str) -> Result<bool> {
        let mut con = self.broker.connection();
        let result = redis::cmd("HEXISTS")
            .arg(self.broker.keys.room_members(room))
            .arg(client_id)
            .query_async::<bool>(&mut con)
            .await;
        self.broker.observe(result.map_err(ClusterError::from))
    }

    /// Every peer of `room` on every node.
    pub async fn members(&self, room: RoomId) -> Result<Vec<Member>> {
        let mut con = self.broker.connection();
        let result =
            redis::cmd("HVALS").arg(self.broker.keys.room_members(room)).query_async::<Vec<String>>(&mut con).await;
        let raw = self.broker.observe(result.map_err(ClusterError::from))?;
        raw.iter().map(|r| serde_json::from_str(r).map_err(|e| ClusterError::Protocol(e.to_string()))).collect()
    }

    /// Seats counted against `room`'s capacity, cluster-wide.
    pub async fn counted(&self, room: RoomId) -> Result<u32> {
        let mut con = self.broker.connection();
        let result =
            redis::cmd("GET").arg(self.broker.keys.room_count(room)).query_async::<Option<u32>>(&mut con).await;
        Ok(self.broker.observe(result.map_err(ClusterError::from))?.unwrap_or(0))
    }

    /// Takes back every seat a dead node held (claimed with [`crate::Nodes::claim_dead`]); the caller
    /// tells each room (`peer_left`) and closes the attendance sessions.
    pub async fn evict_node(&self, node_id: &str) -> Result<Vec<EvictedSeat>> {
        let keys = &self.broker.keys;
        let mut con = self.broker.connection();
        let result = evict_script()
            .key(keys.node_members(node_id))
            .arg(node_id)
            .arg(keys.room_prefix())
            .invoke_async::<Vec<String>>(&mut con)
            .await;
        let flat = self.broker.observe(result.map_err(ClusterError::from))?;
        flat.chunks(2)
            .map(|c| match c {
                [room, raw] => Ok(EvictedSeat {
                    room: room.parse().map_err(|_| ClusterError::Protocol(format!("room {room:?}")))?,
                    member: serde_json::from_str(raw).map_err(|e| ClusterError::Protocol(e.to_string()))?,
                }),
                _ => Err(ClusterError::Protocol("evicted list".into())),
            })
            .collect()
    }

    /// After the broker came back empty (a restart), puts this node's peers back. Claims that now
    /// find the room full are returned (they were admitted before; the caller decides).
    pub async fn reassert(&self, claims: &[ClaimRequest]) -> Result<Vec<(ClaimRequest, Claim)>> {
        let mut out = Vec::with_capacity(claims.len());
        for request in claims {
            let claim = self.claim(request).await?;
            out.push((request.clone(), claim));
        }
        Ok(out)
    }
}
