//! The scenarios, one row of the benchmark table each. Every scenario is bounded in time, talks only to
//! loopback, and returns an [`Outcome`] with the same fields for both servers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::client::{self, Conn, Plan, Source};
use crate::seed::{self, Attendee};
use crate::stats::{cpu_percent, histogram, load_average, Latency};
use crate::target::{Kind, Server};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// One room, every peer broadcasting entity updates at 15 Hz.
    Fanout,
    /// Many small rooms with churn (peers joining and leaving).
    Rooms,
    /// As many idle authenticated connections as fit; memory per connection.
    Idle,
    /// Ticketed joins as fast as possible: join latency including signature verification.
    JoinStorm,
    /// One room where 10% of the peers read slowly.
    Slow,
    /// Quote creation per second (`Purchases::create_quote`) on SQLite or PostgreSQL.
    Quotes,
    /// One event in shards of `shard_size` plus a host on the stage, every peer (the host too) at 15 Hz.
    Shards,
}

/// Knobs of one run, from the command line.
#[derive(Debug, Clone)]
pub struct Params {
    pub peers: usize,
    pub rooms: usize,
    pub seconds: f64,
    pub rate_hz: f64,
    /// Every n-th message is guaranteed.
    pub guaranteed_every: u64,
    /// Joins in flight at once while admitting peers.
    pub concurrency: usize,
    /// Rooms scenario: one peer joins and leaves each room every this many seconds (0: no churn).
    pub churn_every: f64,
    /// Quotes scenario: `sqlite` or `postgres`.
    pub backend: ticketing::Backend,
    /// Shards scenario: attendees per shard (as large as `peers`: one unsharded room, with the host).
    pub shard_size: usize,
}

/// One row: what a scenario measured on one server.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub scenario: String,
    pub target: String,
    pub peers_per_room: usize,
    pub rooms: usize,
    pub seconds: f64,
    pub connections_attempted: u64,
    pub connections_ok: u64,
    /// Messages the peers sent, deliveries owed to the peers that stayed, deliveries they got.
    pub sent: u64,
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub delivered_per_sec: f64,
    /// One-way latency of deliveries (to the peers that read at full speed).
    pub latency: Option<Latency>,
    /// Slow-consumer scenario: what the slow readers got, and how many the server disconnected.
    pub slow_delivered: Option<u64>,
    pub slow_closed: Option<u64>,
    /// Server CPU over the sending window, in percent of one core.
    pub cpu_percent: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    pub rss_per_connection_kib: Option<f64>,
    /// Join storm: the join request (ours: `POST …/join` with signature verification; the baseline:
    /// `joinRoom` → `connectSuccess`) and the whole admission up to the first frame in the room.
    pub join: Option<Latency>,
    pub admission: Option<Latency>,
    pub joins_per_sec: Option<f64>,
    /// Join storm: joins in flight at once (absent in rows written before it was recorded: 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    pub quotes_per_sec: Option<f64>,
    pub backend: Option<String>,
    pub load_average: f64,
    pub date: String,
    pub notes: Vec<String>,
}

impl Outcome {
    fn new(scenario: Scenario, server: Option<&Server>, p: &Params) -> Outcome {
        Outcome {
            scenario: serde_json::to_value(scenario)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            target: server.map(|s| s.kind.label().to_owned()).unwrap_or_else(|| "ours".into()),
            peers_per_room: p.peers,
            rooms: p.rooms,
            seconds: p.seconds,
            load_average: load_average(),
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            ..Default::default()
        }
    }
}

/// Runs one scenario against a started server (none for `quotes`).
pub async fn run(scenario: Scenario, server: Option<&mut Server>, p: &Params) -> anyhow::Result<Outcome> {
    match (scenario, server) {
        (Scenario::Quotes, _) => quotes(p).await,
        (Scenario::Fanout, Some(s)) => relay(scenario, s, p, 1, 0.0, 0).await,
        (Scenario::Rooms, Some(s)) => relay(scenario, s, p, p.rooms, p.churn_every, 0).await,
        (Scenario::Shards, Some(s)) => relay(scenario, s, p, 1, 0.0, 0).await,
        (Scenario::Slow, Some(s)) => relay(scenario, s, p, 1, 0.0, p.peers.div_ceil(10)).await,
        (Scenario::Idle, Some(s)) => idle(s, p).await,
        (Scenario::JoinStorm, Some(s)) => join_storm(s, p).await,
        (_, None) => anyhow::bail!("this scenario needs a server"),
    }
}

/// Tickets for `rooms` events of `per_room` attendees each, plus `spare` per room for churn.
async fn ticket_holders(
    server: &Server,
    rooms: usize,
    per_room: usize,
    spare: usize,
) -> anyhow::Result<Vec<Vec<Attendee>>> {
    let store = server.store()?;
    let secp = &*crate::wallet::SECP;
    let salt: u64 = rand::random();
    let mut events = Vec::with_capacity(rooms);
    for _ in 0..rooms {
        events.push(seed::live_event(store, (per_room + spare) as i64).await?);
    }
    let all = seed::attendees(store, secp, &events, per_room + spare, salt).await?;
    let mut by_room: Vec<Vec<Attendee>> = (0..rooms).map(|_| Vec::new()).collect();
    for (i, a) in all.into_iter().enumerate() {
        by_room[i / (per_room + spare)].push(a);
    }
    Ok(by_room)
}

/// Admits one peer: ours with a signed join and session token, the baseline with `joinRoom`.
async fn admit(
    server: &Server,
    http: &reqwest::Client,
    room: &str,
    attendee: Option<&Attendee>,
    source: Source,
) -> anyhow::Result<Conn> {
    match (server.kind, attendee) {
        (Kind::Ours, Some(attendee)) => {
            let mut granted = client::join_ours(http, &server.http(), attendee).await?;
            // `--nodes N`: peers spread round-robin over the nodes, whichever node the join named.
            let node = server.next_node();
            if server.nodes.len() > 1 {
                let path = granted.websocket_url.splitn(4, '/').nth(3).unwrap_or_default().to_owned();
                granted.websocket_url = format!("ws://{node}/{path}");
            }
            client::open_ours(node, &granted, source).await
        }
        (Kind::Ours, None) => anyhow::bail!("our gateway admits only ticket holders"),
        (Kind::Naf, _) => client::open_naf(server.addr, room, source).await,
    }
}

fn http_client(concurrency: usize) -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(concurrency.max(1)).build().expect("a plain HTTP client")
}

/// How long an idle connection is held at most (the scenario tells it to stop earlier by ending the run).
const IDLE_HOLD: Duration = Duration::from_secs(600);

/// An admitted peer: still in our hands, or already held open by its own task.
enum Held {
    Open(Box<Conn>),
    Idle(tokio::task::JoinHandle<bool>),
}

impl Held {
    fn conn(self) -> Option<Conn> {
        match self {
            Held::Open(c) => Some(*c),
            Held::Idle(_) => None,
        }
    }
}

/// Admits `per_room` peers into each of `rooms` rooms, `concurrency` at a time; returns them by room, and
/// how many attempts failed.
#[allow(clippy::too_many_arguments)] // one call site per scenario, each naming its choices
async fn admit_rooms(
    server: &Server,
    holders: &[Vec<Attendee>],
    rooms: usize,
    per_room: usize,
    concurrency: usize,
    source_offset: usize,
    recv_buffer: impl Fn(usize) -> Option<u32>,
    hold: bool,
) -> (Vec<Vec<Held>>, u64) {
    let http = http_client(concurrency);
    let jobs = (0..rooms).flat_map(|r| (0..per_room).map(move |i| (r, i)));
    let admitted: Vec<(usize, anyhow::Result<Held>)> = stream::iter(jobs)
        .map(|(r, i)| {
            let http = &http;
            let index = r * per_room + i;
            let source = Source { recv_buffer: recv_buffer(i), ..Source::loopback(source_offset + index) };
            let attendee = holders.get(r).and_then(|h| h.get(i));
            async move {
                let conn = admit(server, http, &format!("room-{r}"), attendee, source).await;
                // Idle connections start answering pings the moment they are in: admitting thousands takes
                // longer than the servers' idle timeouts.
                let conn = conn.map(|c| {
                    if hold {
                        Held::Idle(tokio::spawn(c.idle(Instant::now() + IDLE_HOLD)))
                    } else {
                        Held::Open(Box::new(c))
                    }
                });
                (r, conn)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut by_room: Vec<Vec<Held>> = (0..rooms).map(|_| Vec::new()).collect();
    let mut failed = 0;
    for (r, conn) in admitted {
        match conn {
            Ok(conn) => by_room[r].push(conn),
            Err(e) => {
                failed += 1;
                if failed <= 3 {
                    eprintln!("admission failed: {e:#}");
                }
            }
        }
    }
    (by_room, failed)
}

/// Fan-out, many rooms and slow consumers: admit everyone, let them talk for `seconds`, count what arrived.
async fn relay(
    scenario: Scenario,
    server: &mut Server,
    p: &Params,
    rooms: usize,
    churn_every: f64,
    slow: usize,
) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new(scenario, Some(server), p);
    out.rooms = rooms;
    let churners = if churn_every > 0.0 { 2 } else { 0 };
    let holders = match server.kind {
        Kind::Ours => ticket_holders(server, rooms, p.peers, churners).await?,
        Kind::Naf => Vec::new(),
    };
    // Slow readers (the first `slow` of each room) get a 4 KiB receive buffer, so their backlog reaches the
    // server within a second instead of hiding in the kernel.
    let small = |i: usize| (i < slow).then_some(4096);
    // Shards: the event's shard size, and its host on the stage, admitted first (it looks at shard 0).
    let host = if scenario == Scenario::Shards {
        anyhow::ensure!(server.kind == Kind::Ours, "the shards scenario runs against our gateway");
        let event_id = holders[0][0].event_id;
        sqlx::query("UPDATE events SET shard_size = $2 WHERE id = $1")
            .bind(event_id)
            .bind(p.shard_size.max(1) as i64)
            .execute(ticketing::testing::RawSql::raw_pool(server.store()?))
            .await?;
        let token = gateway::auth::session_token::issue(
            &(0..crate::target::SECRET.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&crate::target::SECRET[i..i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()?,
            event_id,
            None,
            Some("loadtest".into()),
            "loadtest".into(),
            ticketing::now_ms() + 600_000,
        )
        .0;
        let granted = client::Granted {
            websocket_url: format!("ws://{}/event/{event_id}", server.addr),
            session_token: token,
            join_latency: Duration::ZERO,
        };
        out.notes.push(format!("one event, shard size {}, one host on the stage", p.shard_size));
        Some(client::open_ours(server.addr, &granted, Source::loopback(2_000_000)).await?)
    } else {
        None
    };
    let (rooms_conns, failed) = admit_rooms(server, &holders, rooms, p.peers, p.concurrency, 0, small, false).await;
    out.connections_attempted = (rooms * p.peers) as u64;
    out.connections_ok = out.connections_attempted - failed;
    anyhow::ensure!(failed == 0, "{failed} of {} peers could not join", out.connections_attempted);
    // Let the join announcements settle before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let start_at = Instant::now() + Duration::from_millis(200);
    let send_until = start_at + Duration::from_secs_f64(p.seconds);
    let stop_at = send_until + Duration::from_secs(2);
    let mut tasks = Vec::new();
    // Who hears whom: a peer's shard (its room's), `None` for the host on the stage, heard everywhere.
    let mut shard_of = Vec::new();
    let plan = |read_pause| Plan {
        rate_hz: p.rate_hz,
        guaranteed_every: p.guaranteed_every,
        start_at,
        send_until,
        stop_at,
        read_pause,
    };
    for (r, conns) in rooms_conns.into_iter().enumerate() {
        for (i, conn) in conns.into_iter().filter_map(Held::conn).enumerate() {
            let read_pause = (i < slow).then_some(Duration::from_millis(20));
            shard_of.push(Some((r, conn.shard)));
            tasks.push((r, i < slow, tokio::spawn(conn.run(plan(read_pause)))));
        }
    }
    let host_shard = host.as_ref().map(|h| (0, h.shard));
    if let Some(host) = host {
        shard_of.push(None);
        tasks.push((0, false, tokio::spawn(host.run(plan(None)))));
    }
    // Churn: in each room a spare ticket holder joins, stays a second, leaves, again and again.
    let churn_attempts = Arc::new(AtomicU64::new(0));
    let churn_ok = Arc::new(AtomicU64::new(0));
    let mut churn_tasks = Vec::new();
    if churn_every > 0.0 {
        let holders = Arc::new(holders);
        let http = http_client(16);
        for r in 0..rooms {
            let (holders, http, attempts, ok) =
                (holders.clone(), http.clone(), churn_attempts.clone(), churn_ok.clone());
            let srv = (server.kind, server.addr, server.http());
            let period = Duration::from_secs_f64(churn_every);
            let offset = period.mul_f64(r as f64 / rooms as f64);
            churn_tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until((start_at + offset).into()).await;
                let mut n = 0usize;
                while Instant::now() + Duration::from_secs(1) < send_until {
                    let source = Source::loopback(1_000_000 + r);
                    attempts.fetch_add(1, Ordering::Relaxed);
                    let conn = match srv.0 {
                        Kind::Ours => {
                            let attendee = &holders[r][p_index(holders[r].len(), churners, n)];
                            match client::join_ours(&http, &srv.2, attendee).await {
                                Ok(g) => client::open_ours(srv.1, &g, source).await,
                                Err(e) => Err(e),
                            }
                        }
                        Kind::Naf => client::open_naf(srv.1, &format!("room-{r}"), source).await,
                    };
                    if let Ok(conn) = conn {
                        ok.fetch_add(1, Ordering::Relaxed);
                        conn.idle(Instant::now() + Duration::from_secs(1)).await;
                    }
                    n += 1;
                    tokio::time::sleep(period.saturating_sub(Duration::from_secs(1))).await;
                }
            }));
        }
    }

    tokio::time::sleep_until(start_at.into()).await;
    let before = server.sample();
    tokio::time::sleep_until(send_until.into()).await;
    let after = server.sample();
    let mut results = Vec::new();
    for (r, is_slow, task) in tasks {
        results.push((r, is_slow, task.await.context("peer task")?));
    }
    for t in churn_tasks {
        let _ = t.await;
    }
    out.connections_attempted += churn_attempts.load(Ordering::Relaxed);
    out.connections_ok += churn_ok.load(Ordering::Relaxed);

    // Deliveries owed to each peer: everything the others in its room (its shard) sent, and the stage.
    let mut sent_by_shard: std::collections::HashMap<(usize, u64), u64> = std::collections::HashMap::new();
    let mut stage_sent = 0;
    for ((_, _, res), shard) in results.iter().zip(&shard_of) {
        match shard {
            Some(key) => *sent_by_shard.entry(*key).or_default() += res.sent,
            None => stage_sent += res.sent,
        }
    }
    if scenario == Scenario::Shards {
        out.notes.push(format!("{} shards", sent_by_shard.len()));
    }
    let mut latency = histogram();
    let (mut slow_delivered, mut slow_closed) = (0, 0);
    for ((_, is_slow, res), shard) in results.iter().zip(&shard_of) {
        out.sent += res.sent;
        if *is_slow {
            slow_delivered += res.received;
            slow_closed += u64::from(res.closed.is_some());
            continue;
        }
        let owed = match shard {
            Some(key) => sent_by_shard[key] - res.sent + stage_sent,
            // The host hears the shard it looks at.
            None => host_shard.and_then(|key| sent_by_shard.get(&key)).copied().unwrap_or(0),
        };
        out.expected += owed;
        out.delivered += res.received;
        out.lost += owed.saturating_sub(res.received);
        latency.add(&res.latency).context("merge histograms")?;
        if let Some(reason) = &res.closed {
            out.notes.push(format!("a peer was closed: {reason}"));
        }
    }
    // Count slow readers' deliveries too in the throughput: the server did relay them.
    out.delivered_per_sec = (out.delivered + slow_delivered) as f64 / p.seconds;
    out.latency = Latency::of(&latency);
    if slow > 0 {
        out.slow_delivered = Some(slow_delivered);
        out.slow_closed = Some(slow_closed);
    }
    if let (Some(b), Some(a)) = (before, after) {
        out.cpu_percent = Some(cpu_percent(b, a, p.seconds));
    }
    out.peak_rss_mib = server.sample().map(|s| s.peak_rss_kib as f64 / 1024.0);
    out.notes.sort();
    out.notes.dedup();
    if !server.alive() {
        out.notes.push("the server died during the run".into());
    }
    Ok(out)
}

/// Which spare ticket a churner uses for its n-th join (they rotate, so a ticket is never seated twice).
fn p_index(len: usize, spare: usize, n: usize) -> usize {
    len - spare + n % spare.max(1)
}

/// Idle capacity: connect `peers` clients in rooms of ten and hold them; memory per connection.
async fn idle(server: &mut Server, p: &Params) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new(Scenario::Idle, Some(server), p);
    let per_room = 10;
    let rooms = p.peers.div_ceil(per_room);
    out.peers_per_room = per_room;
    out.rooms = rooms;
    let holders = match server.kind {
        Kind::Ours => ticket_holders(server, rooms, per_room, 0).await?,
        Kind::Naf => Vec::new(),
    };
    let before = server.sample().unwrap_or_default();
    let started = Instant::now();
    let (conns, failed) = admit_rooms(server, &holders, rooms, per_room, p.concurrency, 0, |_| None, true).await;
    let admitted = started.elapsed();
    out.connections_attempted = (rooms * per_room) as u64;
    out.connections_ok = out.connections_attempted - failed;
    out.joins_per_sec = Some(out.connections_ok as f64 / admitted.as_secs_f64());
    // They answer pings from the moment they are in; hold them a while, then see which are still open.
    let held: Vec<_> = conns
        .into_iter()
        .flatten()
        .filter_map(|h| match h {
            Held::Idle(task) => Some(task),
            Held::Open(_) => None,
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(p.seconds)).await;
    let during = server.sample().unwrap_or_default();
    let mut still_open = 0u64;
    for h in held {
        // A finished task means the server closed it; a running one is still open.
        if !h.is_finished() {
            still_open += 1;
        }
        h.abort();
    }
    if still_open < out.connections_ok {
        out.notes.push(format!("{} connections were closed while idle", out.connections_ok - still_open));
    }
    out.connections_ok = still_open;
    if server.pid.is_some() && still_open > 0 {
        out.rss_per_connection_kib = Some(during.rss_kib.saturating_sub(before.rss_kib) as f64 / still_open as f64);
        out.peak_rss_mib = server.sample().map(|s| s.peak_rss_kib as f64 / 1024.0);
    }
    Ok(out)
}

/// Join storm: `peers` joins as fast as `concurrency` allows, into rooms of 50; join latency.
async fn join_storm(server: &mut Server, p: &Params) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new(Scenario::JoinStorm, Some(server), p);
    let per_room = 50.min(p.peers);
    let rooms = p.peers.div_ceil(per_room);
    out.peers_per_room = per_room;
    out.rooms = rooms;
    let holders = match server.kind {
        Kind::Ours => ticket_holders(server, rooms, per_room, 0).await?,
        Kind::Naf => Vec::new(),
    };
    // Fetch and sign every challenge first: the storm is the joins themselves.
    let http = http_client(p.concurrency);
    let secp = &*crate::wallet::SECP;
    let mut signed = Vec::new();
    for (r, room) in holders.iter().enumerate() {
        for a in room {
            let url =
                format!("{}/api/events/{}/challenge?chain=eth&wallet={}", server.http(), a.event_id, a.wallet.address);
            let v: serde_json::Value = http.get(url).send().await?.json().await?;
            let message = v["message"].as_str().context("challenge")?.to_owned();
            let signature = a.wallet.sign(secp, &message);
            signed.push((r, a.event_id, serde_json::json!({ "wallet_address": a.wallet.address, "chain": "eth", "signature": signature, "message": message })));
        }
    }
    if server.kind == Kind::Naf {
        signed = (0..rooms * per_room).map(|i| (i / per_room, 0, serde_json::Value::Null)).collect();
    }
    let before = server.sample();
    let started = Instant::now();
    let base = server.http();
    let addr = server.addr;
    let kind = server.kind;
    let results: Vec<anyhow::Result<(Duration, Duration, Conn)>> = stream::iter(signed.into_iter().enumerate())
        .map(|(i, (r, event_id, body))| {
            let (http, base) = (&http, &base);
            async move {
                let t0 = Instant::now();
                match kind {
                    Kind::Ours => {
                        let res = http.post(format!("{base}/api/events/{event_id}/join")).json(&body).send().await?;
                        let status = res.status();
                        let v: serde_json::Value = res.json().await?;
                        let join = t0.elapsed();
                        anyhow::ensure!(status.is_success(), "join refused: {status} {v}");
                        let granted = client::Granted {
                            websocket_url: v["websocket_url"].as_str().context("websocket_url")?.into(),
                            session_token: v["session_token"].as_str().context("session_token")?.into(),
                            join_latency: join,
                        };
                        let conn = client::open_ours(addr, &granted, Source::loopback(i)).await?;
                        Ok((join, t0.elapsed(), conn))
                    }
                    Kind::Naf => {
                        let conn = client::open_naf(addr, &format!("room-{r}"), Source::loopback(i)).await?;
                        Ok((t0.elapsed(), t0.elapsed(), conn))
                    }
                }
            }
        })
        .buffer_unordered(p.concurrency.max(1))
        .collect()
        .await;
    let elapsed = started.elapsed();
    let after = server.sample();
    let (mut join, mut admission) = (histogram(), histogram());
    let mut conns = Vec::new();
    out.connections_attempted = results.len() as u64;
    for r in results {
        match r {
            Ok((j, a, conn)) => {
                join.record(j.as_micros().max(1) as u64)?;
                admission.record(a.as_micros().max(1) as u64)?;
                conns.push(conn);
            }
            Err(e) => out.notes.push(format!("{e:#}")),
        }
    }
    out.notes.truncate(3);
    out.connections_ok = conns.len() as u64;
    out.join = Latency::of(&join);
    out.admission = Latency::of(&admission);
    out.joins_per_sec = Some(out.connections_ok as f64 / elapsed.as_secs_f64());
    out.concurrency = Some(p.concurrency.max(1));
    out.seconds = elapsed.as_secs_f64();
    if let (Some(b), Some(a)) = (before, after) {
        out.cpu_percent = Some(cpu_percent(b, a, elapsed.as_secs_f64()));
    }
    out.peak_rss_mib = server.sample().map(|s| s.peak_rss_kib as f64 / 1024.0);
    drop(conns);
    Ok(out)
}

/// Quote creation per second through `Purchases::create_quote`, eight at a time, on a fresh database.
async fn quotes(p: &Params) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new(Scenario::Quotes, None, p);
    out.backend = Some(format!("{:?}", p.backend).to_lowercase());
    let db = ticketing::testing::TestDb::new(p.backend).await;
    let store = ticketing::Store::connect(&db.url, 8).await?;
    let event_id = seed::live_event(&store, 10_000_000).await?;
    let purchases = seed::purchases(&store);
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(p.seconds);
    let mut latency = histogram();
    let workers: Vec<_> = (0..p.concurrency.max(1))
        .map(|w| {
            let (purchases, done, failed) = (purchases.clone(), done.clone(), failed.clone());
            tokio::spawn(async move {
                let mut h = histogram();
                let mut i = 0u64;
                while Instant::now() < until {
                    let wallet = format!("0x{:020x}{:020x}", w as u64 + 1, i);
                    let t0 = Instant::now();
                    let request = ticketing::purchases::QuoteRequest {
                        event_id,
                        currency: chains::Currency::Eth,
                        wallet_address: wallet,
                    };
                    match purchases.create_quote(request, ticketing::now_ms()).await {
                        Ok(_) => {
                            done.fetch_add(1, Ordering::Relaxed);
                            let _ = h.record(t0.elapsed().as_micros().max(1) as u64);
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    i += 1;
                }
                h
            })
        })
        .collect();
    for w in workers {
        latency.add(&w.await?)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    out.seconds = elapsed;
    out.sent = done.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed);
    out.delivered = done.load(Ordering::Relaxed);
    out.lost = failed.load(Ordering::Relaxed);
    out.quotes_per_sec = Some(out.delivered as f64 / elapsed);
    out.latency = Latency::of(&latency);
    out.peers_per_room = p.concurrency;
    out.rooms = 0;
    store.close().await;
    Ok(out)
}
