//! Simulated NAF clients for both servers.
//!
//! * Ours (docs/PROTOCOL.md): fetch the gateway's challenge, sign it with the wallet, `POST …/join` for a
//!   session token, open `/event/{id}?token=…` and wait for `welcome`.
//! * networked-aframe's socket.io server, spoken by hand over a WebSocket (Engine.IO v4): the server opens
//!   with `0{…}`, we connect the default namespace with `40` and get `40{"sid":…}` (the id peers address),
//!   events travel as `42["name",data]`, and the server's `2` ping wants a `3` pong.
//!
//! Both then behave as a NAF scene: broadcast an `um` at 15 Hz, now and then a guaranteed message, and read
//! everything relayed to them.

use std::net::{Ipv4Addr, SocketAddr};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{FutureExt, SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::payload;
use crate::seed::Attendee;
use crate::stats::histogram;
use crate::target::Kind;

pub type Ws = WebSocketStream<TcpStream>;

/// Where a client's TCP connections come from: loopback addresses 127.0.0.2… give each its own ~28,000
/// ephemeral ports, so one machine can hold more connections than one source address allows.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub ip: Ipv4Addr,
    /// A small receive buffer makes a slow reader's backlog reach the server quickly.
    pub recv_buffer: Option<u32>,
}

impl Source {
    pub fn loopback(index: usize) -> Source {
        Source { ip: Ipv4Addr::new(127, 0, 0, (2 + index / 20_000).min(254) as u8), recv_buffer: None }
    }
}

pub async fn tcp(addr: SocketAddr, source: Source) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source.ip.into(), 0)).with_context(|| format!("bind {}", source.ip))?;
    if let Some(size) = source.recv_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    let stream = socket.connect(addr).await.with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// tungstenite zeroes the whole free part of its read buffer before every `read(2)`: with its default of
/// 128 KiB that memset, not the reading, was the generator's biggest cost. 16 KiB still takes ~40 relayed
/// frames per read (and 18,000 idle connections hold an eighth of the memory).
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(16 * 1024)
}

/// An open, admitted connection.
pub struct Conn {
    pub kind: Kind,
    pub ws: Ws,
    pub client_id: String,
    /// The shard the welcome placed it in (ours; 0 for the baseline).
    pub shard: u64,
}

/// A session token from our join endpoint, and how long the `POST …/join` took.
pub struct Granted {
    pub websocket_url: String,
    pub session_token: String,
    pub join_latency: Duration,
}

/// Challenge, signature, `POST /api/events/{id}/join`.
pub async fn join_ours(http: &reqwest::Client, base: &str, attendee: &Attendee) -> anyhow::Result<Granted> {
    let event = attendee.event_id;
    let wallet = &attendee.wallet.address;
    let res = http.get(format!("{base}/api/events/{event}/challenge?chain=eth&wallet={wallet}")).send().await?;
    anyhow::ensure!(res.status().is_success(), "challenge: {}", res.status());
    let challenge: Value = res.json().await?;
    let message = challenge["message"].as_str().context("challenge without message")?.to_owned();
    let signature = attendee.wallet.sign(&crate::wallet::SECP, &message);
    let body =
        serde_json::json!({ "wallet_address": wallet, "chain": "eth", "signature": signature, "message": message });
    let started = Instant::now();
    let res = http.post(format!("{base}/api/events/{event}/join")).json(&body).send().await?;
    let status = res.status();
    let granted: Value = res.json().await?;
    let join_latency = started.elapsed();
    anyhow::ensure!(status.is_success(), "join refused: {status} {granted}");
    Ok(Granted {
        websocket_url: granted["websocket_url"].as_str().context("no websocket_url")?.to_owned(),
        session_token: granted["session_token"].as_str().context("no session_token")?.to_owned(),
        join_latency,
    })
}

/// The presence protocol version our clients announce (`?protocol=`; 2 unpacks `batch` frames), from
/// `LOAD_TESTS_PROTOCOL` (default 2; 1 for clients that expect one message per frame).
pub fn protocol() -> u32 {
    std::env::var("LOAD_TESTS_PROTOCOL").ok().and_then(|v| v.parse().ok()).unwrap_or(2)
}

/// Opens `/event/{id}?token=…&protocol=…` and waits for `welcome`.
pub async fn open_ours(addr: SocketAddr, granted: &Granted, source: Source) -> anyhow::Result<Conn> {
    let stream = tcp(addr, source).await?;
    let url = format!("{}?token={}&protocol={}", granted.websocket_url, granted.session_token, protocol());
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config()))
        .await
        .context("websocket handshake")?;
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await.context("no welcome within 20 s")? {
            Some(Ok(Message::Text(text))) => {
                let mut v: Value = serde_json::from_str(&text)?;
                // Protocol 2: the welcome may come first in a batch with the room's next frames.
                if v["type"] == "batch" {
                    v = v["frames"][0].take();
                }
                anyhow::ensure!(v["type"] == "welcome", "expected welcome, got {text}");
                let client_id = v["client_id"].as_str().context("welcome without client_id")?.to_owned();
                let shard = v["shard"].as_u64().unwrap_or(0);
                return Ok(Conn { kind: Kind::Ours, ws, client_id, shard });
            }
            Some(Ok(Message::Close(frame))) => anyhow::bail!("closed at the door: {frame:?}"),
            Some(Ok(_)) => continue,
            other => anyhow::bail!("connection ended before welcome: {other:?}"),
        }
    }
}

/// Joins a room on the socket.io server: handshake, namespace connect, `joinRoom`, `connectSuccess`.
pub async fn open_naf(addr: SocketAddr, room: &str, source: Source) -> anyhow::Result<Conn> {
    let stream = tcp(addr, source).await?;
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config()))
        .await
        .context("websocket handshake")?;
    let mut client_id = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next()).await.context("no connectSuccess within 20 s")?;
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => anyhow::bail!("closed: {frame:?}"),
            Some(Ok(_)) => continue,
            other => anyhow::bail!("connection ended before connectSuccess: {other:?}"),
        };
        if text.starts_with('0') {
            ws.send(Message::Text("40".into())).await?;
        } else if let Some(body) = text.strip_prefix("40") {
            let v: Value = serde_json::from_str(body)?;
            client_id = Some(v["sid"].as_str().context("namespace connect without sid")?.to_owned());
            let join = serde_json::json!(["joinRoom", { "room": room }]);
            ws.send(Message::Text(format!("42{join}").into())).await?;
        } else if text.as_str() == "2" {
            ws.send(Message::Text("3".into())).await?;
        } else if text.starts_with("42[\"connectSuccess\"") {
            let client_id = client_id.context("connectSuccess before the namespace connect")?;
            return Ok(Conn { kind: Kind::Naf, ws, client_id, shard: 0 });
        }
    }
}

/// What one simulated client does once admitted.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Entity updates per second (NAF's default network tick is 15 Hz).
    pub rate_hz: f64,
    /// Every n-th message is a guaranteed one (0: never).
    pub guaranteed_every: u64,
    /// When to start and stop sending.
    pub start_at: Instant,
    pub send_until: Instant,
    /// When to stop reading and close (after the last messages drained).
    pub stop_at: Instant,
    /// A slow consumer pauses this long after each message it reads.
    pub read_pause: Option<Duration>,
}

#[derive(Debug)]
pub struct PeerResult {
    pub sent: u64,
    pub received: u64,
    pub latency: Histogram<u64>,
    /// Why the server closed us early, if it did.
    pub closed: Option<String>,
}

impl Conn {
    fn frame(&self, seq: u64, guaranteed: bool) -> String {
        let data = payload::entity_update(&self.client_id, seq);
        match self.kind {
            Kind::Ours => {
                let data_type = if guaranteed { "chat-note" } else { "um" };
                format!(r#"{{"type":"broadcast","data_type":"{data_type}","data":{data},"guaranteed":{guaranteed}}}"#)
            }
            Kind::Naf => {
                let data_type = if guaranteed { "chat-note" } else { "um" };
                format!(r#"42["broadcast",{{"from":"{}","type":"{data_type}","data":{data}}}]"#, self.client_id)
            }
        }
    }

    /// Sends and reads as the plan says; returns counts and the one-way latency of what it received.
    pub async fn run(mut self, plan: Plan) -> PeerResult {
        let mut result = PeerResult { sent: 0, received: 0, latency: histogram(), closed: None };
        // Real clients tick out of phase with each other: start at a random point of the first period, so the
        // server sees a steady stream rather than every peer's update in the same millisecond.
        let phase = Duration::from_secs_f64(rand::random::<f64>() / plan.rate_hz);
        tokio::time::sleep_until((plan.start_at + phase).into()).await;
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / plan.rate_hz));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = tokio::time::sleep_until(plan.stop_at.into());
        tokio::pin!(stop);
        let mut sending = true;
        'run: loop {
            tokio::select! {
                _ = &mut stop => break 'run,
                _ = tick.tick(), if sending => {
                    if Instant::now() >= plan.send_until {
                        sending = false;
                        continue;
                    }
                    let guaranteed = plan.guaranteed_every > 0 && result.sent % plan.guaranteed_every == plan.guaranteed_every - 1;
                    let frame = self.frame(result.sent, guaranteed);
                    // A server that stops reading must not hold the run past its end.
                    match tokio::time::timeout_at(plan.stop_at.into(), self.ws.send(Message::Text(frame.into()))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => {
                            result.closed.get_or_insert_with(|| "send failed".into());
                            break 'run;
                        }
                        Err(_) => break 'run,
                    }
                    result.sent += 1;
                }
                frame = self.ws.next() => {
                    // Everything already received is handled here, not one frame per trip through `select!`
                    // (a busy room owes each peer thousands of frames a second). The runtime's budget still
                    // ends the loop now and then so the timers above get their turn.
                    let mut frame = frame;
                    loop {
                        if self.on_frame(frame, &mut result, &plan).await.is_break() {
                            break 'run;
                        }
                        if plan.read_pause.is_some() {
                            break;
                        }
                        match self.ws.next().now_or_never() {
                            Some(next) => frame = next,
                            None => break,
                        }
                    }
                }
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
        result
    }

    /// Counts one received frame: only the embedded send time is read (see [`payload::sent_at`]), never a
    /// full JSON decode. `Break` when the connection ended.
    async fn on_frame(
        &mut self,
        frame: Option<Result<Message, WsError>>,
        result: &mut PeerResult,
        plan: &Plan,
    ) -> ControlFlow<()> {
        match frame {
            Some(Ok(Message::Text(text))) => {
                // One relayed message, or a `batch` of them (protocol 2): each counts on its own.
                let now = payload::now_us();
                let mut messages = 0u32;
                for at in payload::sent_times(text.as_bytes()) {
                    messages += 1;
                    let _ = result.latency.record(now.saturating_sub(at).max(1));
                }
                if messages > 0 {
                    result.received += u64::from(messages);
                    if let Some(pause) = plan.read_pause {
                        tokio::time::sleep(pause * messages).await;
                    }
                } else if self.kind == Kind::Naf && text.as_str() == "2" {
                    let _ = self.ws.send(Message::Text("3".into())).await;
                }
                ControlFlow::Continue(())
            }
            Some(Ok(Message::Close(frame))) => {
                result.closed = Some(
                    frame.map(|f| format!("{} {}", u16::from(f.code), f.reason)).unwrap_or_else(|| "closed".into()),
                );
                ControlFlow::Break(())
            }
            Some(Ok(_)) => ControlFlow::Continue(()),
            Some(Err(e)) => {
                result.closed = Some(e.to_string());
                ControlFlow::Break(())
            }
            None => {
                result.closed = Some("connection ended".into());
                ControlFlow::Break(())
            }
        }
    }

    /// Holds the connection open and answers pings until `until`; false if the server closed it.
    pub async fn idle(mut self, until: Instant) -> bool {
        let stop = tokio::time::sleep_until(until.into());
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return true,
                frame = self.ws.next() => match frame {
                    Some(Ok(Message::Text(text))) if self.kind == Kind::Naf && text.as_str() == "2" => {
                        if self.ws.send(Message::Text("3".into())).await.is_err() {
                            return false;
                        }
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
                    Some(Ok(_)) => {}
                }
            }
        }
    }
}
