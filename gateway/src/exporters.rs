//! Prometheus collectors for the numbers other crates keep as plain atomics (they know no metrics library):
//! rooms (signaling), the TURN relay and the payment watchers. Read at scrape time, so nothing is copied on the
//! hot path.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// `gateway_rooms_*`, `gateway_room_*` from the signaling hub.
pub struct RoomsCollector(pub signaling::Hub);

impl std::fmt::Debug for RoomsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoomsCollector")
    }
}

impl Collector for RoomsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.stats_snapshot();
        let e = &mut encoder;
        gauge(e, "rooms_active", "Rooms with at least one peer on this node", s.rooms as i64)?;
        gauge(e, "room_peers", "Peers seated in rooms on this node", s.peers as i64)?;
        counter(e, "room_messages_relayed", "Client messages accepted and relayed", s.messages_relayed)?;
        counter(
            e,
            "room_frames_queued",
            "Frames queued to peers (a broadcast counts once per recipient)",
            s.frames_queued,
        )?;
        counter(e, "room_unguaranteed_dropped", "Unguaranteed frames dropped for slow peers", s.unguaranteed_dropped)?;
        counter(
            e,
            "room_slow_consumers_closed",
            "Peers closed because their guaranteed queue overflowed",
            s.slow_consumers_closed,
        )?;
        counter(e, "room_rate_limited_closed", "Peers closed for exceeding their message rate", s.rate_limited_closed)?;
        counter(e, "room_oversized_closed", "Peers closed for an oversized frame", s.oversized_closed)?;
        counter(e, "room_malformed_closed", "Peers closed for a malformed frame", s.malformed_closed)?;
        counter(e, "room_messages_refused", "Messages answered with an error frame", s.messages_refused)?;
        counter(e, "room_chat_messages", "Chat messages relayed", s.chat_messages)?;
        counter(
            e,
            "room_admissions_refused",
            "Admissions refused by the rooms (full, banned, shutting down)",
            s.admissions_refused,
        )?;
        counter(
            e,
            "room_resumes_succeeded",
            "Sessions continued on a new connection after a drop",
            s.resumes_succeeded,
        )?;
        counter(
            e,
            "room_resumes_failed",
            "Resumes refused (bad, used or expired token; the seat no longer held)",
            s.resumes_failed,
        )?;
        counter(
            e,
            "room_resumes_expired",
            "Dropped sessions whose resume window passed (the seat was freed)",
            s.resumes_expired,
        )?;
        counter(e, "room_replayed_frames", "Frames written again to resumed sessions", s.frames_replayed)?;
        self.encode_shards(e)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShardLabels {
    event: String,
    shard: String,
}

impl RoomsCollector {
    /// `gateway_shards_open` and `gateway_shard_occupants{event,shard}`: this node's attendees off stage per
    /// open shard of each sharded event (with several nodes, the sum over nodes is the shard's head count).
    fn encode_shards(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rooms = self.0.shard_occupancy_all();
        let open: usize = rooms.iter().map(|(_, shards)| shards.len()).sum();
        gauge(e, "shards_open", "Open shards of sharded events with attendees on this node", open as i64)?;
        let mut family = e.encode_descriptor(
            "shard_occupants",
            "Attendees off stage on this node, per open shard of each sharded event",
            None,
            MetricType::Gauge,
        )?;
        for (event, shards) in rooms {
            for occupancy in shards {
                let labels = ShardLabels { event: event.to_string(), shard: occupancy.shard.to_string() };
                ConstGauge::new(i64::from(occupancy.attendees)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// `gateway_http_connections_*` from the accept loop.
#[derive(Debug)]
pub struct ConnectionsCollector(pub crate::http::server::ConnectionGauge);

impl Collector for ConnectionsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let open = i64::try_from(self.0.open()).unwrap_or(i64::MAX);
        gauge(
            &mut encoder,
            "http_connections_open",
            "Client connections open (HTTP and WebSocket), up to server.max_connections",
            open,
        )
    }
}

/// `gateway_turn_*` from the TURN relay.
#[derive(Debug)]
pub struct TurnCollector(pub Arc<turn_relay::TurnStats>);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

impl Collector for TurnCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.snapshot();
        let e = &mut encoder;
        gauge(e, "turn_allocations_active", "TURN allocations open", s.allocations_active as i64)?;
        counter(e, "turn_allocations", "TURN allocations made", s.allocations_total)?;
        counter(e, "turn_relayed_bytes", "Payload bytes relayed in both directions", s.bytes_relayed())?;
        counter(e, "turn_peer_denied", "Permissions or datagrams refused for a denied peer address", s.peer_denied)?;
        counter(e, "turn_quota_rejections", "Allocations refused at the per-credential quota", s.quota_rejections)?;
        let mut family = encoder.encode_descriptor(
            "turn_auth_failures",
            "TURN authentications refused, by reason",
            None,
            MetricType::Counter,
        )?;
        for (reason, value) in s.auth_failures() {
            ConstCounter::new(value).encode(family.encode_family(&ReasonLabel { reason })?)?;
        }
        Ok(())
    }
}

/// `gateway_sfu_*` from the embedded SFU's counters (`[media]` mode `sfu` or `auto`).
pub struct SfuCollector(pub Arc<media::SfuStats>);

impl std::fmt::Debug for SfuCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SfuCollector")
    }
}

impl Collector for SfuCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let get = media::SfuStats::get;
        let s = &self.0;
        let e = &mut encoder;
        gauge(e, "sfu_participants", "Peer connections the SFU holds", get(&s.participants) as i64)?;
        counter(e, "sfu_received_packets", "Datagrams the SFU accepted", get(&s.packets_received))?;
        counter(e, "sfu_forwarded_packets", "Media packets written to listeners", get(&s.packets_forwarded))?;
        counter(e, "sfu_forwarded_bytes", "Media payload bytes written to listeners", get(&s.bytes_forwarded))?;
        counter(
            e,
            "sfu_refused_packets",
            "Media dropped: its sender was muted or may not publish",
            get(&s.packets_refused),
        )?;
        Ok(())
    }
}

/// `gateway_watcher_*` per chain from the payment watchers.
pub struct WatchersCollector(pub Arc<watchers::Supervisor>);

impl std::fmt::Debug for WatchersCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WatchersCollector")
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChainLabel {
    chain: &'static str,
}

impl Collector for WatchersCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let all = self.0.metrics();
        type Read = fn(&watchers::ChainMetrics) -> i64;
        let gauges: [(&str, &str, Read); 4] = [
            ("watcher_head_height", "Chain head height as last read", |m| m.head_height.get()),
            ("watcher_cursor_height", "Last block scanned", |m| m.cursor_height.get()),
            ("watcher_lag_blocks", "Blocks between the cursor and the head", |m| m.lag_blocks.get()),
            ("watcher_healthy", "1 when the watcher's last tick succeeded recently", |m| i64::from(m.is_healthy())),
        ];
        for (name, help, read) in gauges {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (chain, m) in &all {
                ConstGauge::new(read(m)).encode(family.encode_family(&ChainLabel { chain: chain.as_str() })?)?;
            }
        }
        type ReadU = fn(&watchers::ChainMetrics) -> u64;
        let counters: [(&str, &str, ReadU); 7] = [
            ("watcher_payments_seen", "Transfers to quote addresses found", |m| m.payments_seen.get()),
            ("watcher_payments_confirmed", "Final payments ticketing acted on", |m| m.payments_confirmed.get()),
            ("watcher_payments_orphaned", "Sightings orphaned by a reorg", |m| m.payments_orphaned.get()),
            ("watcher_payments_reversed", "Final (credited) payments reversed: their block left the chain", |m| {
                m.payments_reversed.get()
            }),
            ("watcher_rpc_errors", "Failed RPC attempts", |m| m.rpc_errors.get()),
            ("watcher_skipped", "Transactions or responses skipped as not understood", |m| m.skipped.get()),
            ("watcher_restarts", "Restarts after an error", |m| m.restarts.get()),
        ];
        for (name, help, read) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (chain, m) in &all {
                ConstCounter::new(read(m)).encode(family.encode_family(&ChainLabel { chain: chain.as_str() })?)?;
            }
        }
        Ok(())
    }
}

/// `gateway_tickets_issued_total`, `gateway_revenue_base_units_total`, `gateway_refunds_total` and
/// `gateway_refunded_base_units_total` per currency, from the store's running totals (every node's sales), as
/// last refreshed by [`SalesCollector::refresh`]. Base-unit sums are exact in the store; Prometheus holds them as
/// doubles, exact up to 2^53.
#[derive(Debug, Default, Clone)]
pub struct SalesCollector(
    pub Arc<std::sync::Mutex<(Option<std::time::Instant>, ticketing::sales_totals::SalesTotals)>>,
);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CurrencyLabel {
    currency: String,
}

impl Collector for SalesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let totals = self.0.lock().map(|t| t.1.clone()).unwrap_or_default();
        type Tallies = std::collections::BTreeMap<String, ticketing::sales_totals::Tally>;
        let series: [(&str, &str, &Tallies, bool); 4] = [
            ("tickets_issued", "Tickets issued, by the currency paid", &totals.tickets, false),
            ("revenue_base_units", "Paid for tickets, in base units of each currency", &totals.tickets, true),
            ("refunds", "Refund entries recorded (not cancelled), by currency", &totals.refunds, false),
            ("refunded_base_units", "Refunds recorded, in base units of each currency", &totals.refunds, true),
        ];
        for (name, help, tallies, units) in series {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (currency, tally) in tallies {
                let labels = CurrencyLabel { currency: currency.clone() };
                if units {
                    ConstCounter::new(tally.units as f64).encode(family.encode_family(&labels)?)?;
                } else {
                    ConstCounter::new(tally.count).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

impl SalesCollector {
    /// Re-reads the totals from the store when the last read is older than `max_age` (a scrape calls this, so
    /// graphs are as fresh as the scrape interval without a poller of their own).
    pub async fn refresh(&self, store: &ticketing::Store, max_age: std::time::Duration) {
        let stale = self.0.lock().map(|held| held.0.is_none_or(|at| at.elapsed() >= max_age)).unwrap_or(true);
        if !stale {
            return;
        }
        match store.sales_totals().await {
            Ok(fresh) => {
                if let Ok(mut held) = self.0.lock() {
                    *held = (Some(std::time::Instant::now()), fresh);
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot read sales totals for metrics"),
        }
    }
}

/// `gateway_cluster_*`: the broker's state and the cross-node relay's counters (`[cluster]` only).
#[derive(Debug)]
pub struct ClusterCollector(pub Arc<cluster::ClusterStats>);

impl Collector for ClusterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use cluster::ClusterStats;
        let s = &*self.0;
        let e = &mut encoder;
        gauge(
            e,
            "cluster_broker_up",
            "1 while the cluster broker (Redis) answers, 0 while it is away",
            i64::from(s.is_broker_up()),
        )?;
        counter(
            e,
            "cluster_envelopes_published",
            "Envelopes and control messages published to other nodes",
            ClusterStats::get(&s.published),
        )?;
        counter(
            e,
            "cluster_envelopes_received",
            "Envelopes received from other nodes",
            ClusterStats::get(&s.received),
        )?;
        counter(
            e,
            "cluster_envelopes_dropped",
            "Envelopes for other nodes dropped (broker away or queue full)",
            ClusterStats::get(&s.dropped),
        )?;
        counter(
            e,
            "cluster_envelopes_missing",
            "Envelopes from other nodes missing from their sequence",
            ClusterStats::get(&s.gaps),
        )?;
        counter(
            e,
            "cluster_broker_reconnects",
            "Relay subscriptions re-established after the broker came back",
            ClusterStats::get(&s.reconnects),
        )?;
        counter(
            e,
            "cluster_nodes_reaped",
            "Dead nodes this node cleaned up after",
            ClusterStats::get(&s.reaped_nodes),
        )?;
        counter(
            e,
            "cluster_shard_placements",
            "Members placed in a shard or on the stage by this node's seat claims",
            ClusterStats::get(&s.placements),
        )?;
        counter(
            e,
            "cluster_shard_moves",
            "Members moved to another shard, or on or off the stage, through the broker by this node",
            ClusterStats::get(&s.placement_moves),
        )?;
        Ok(())
    }
}
