//! The SFU benchmark: simulated WebRTC clients (str0m, full ICE, DTLS-SRTP) against the
//! embedded SFU (`media`), in one process: the SFU's engine on its own thread pinned to
//! core 0, the clients on core 1. The SFU thread's CPU time is read from
//! `/proc/self/task/<tid>/stat`, so the figure is the SFU's alone.
//!
//! Speakers send 50 Opus-sized frames a second (20 ms each) whose payload starts with the
//! send time; each listener records the delay of every frame it gets. Forwarded packets
//! are the SFU's count (one per listener per frame).

use crate::stats::{self, Latency};
use hdrhistogram::Histogram;
use media::testing::{OnMedia, TestClient, Transceivers};
use media::{Role, Sfu, SfuConfig, SfuStats};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct SfuParams {
    pub speakers: usize,
    pub listeners: usize,
    pub loudest: usize,
    pub seconds: f64,
    pub pin: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SfuOutcome {
    pub speakers: usize,
    pub listeners: usize,
    pub loudest: usize,
    pub seconds: f64,
    /// Packets the SFU wrote to listeners, per second.
    pub forwarded_per_sec: f64,
    /// Frames the listeners received, per second.
    pub received_per_sec: f64,
    /// The SFU thread's CPU, % of one core.
    pub sfu_cpu_percent: f64,
    /// The clients' CPU (the rest of the process), % of one core: when near 100, the generator saturated.
    pub clients_cpu_percent: f64,
    /// SFU CPU per forwarded packet, µs.
    pub sfu_us_per_packet: f64,
    /// Speaker-to-listener delay over loopback, both str0m clients included.
    pub delay: Option<Latency>,
    pub load_average: f64,
    pub machine: String,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn pin_current_thread(core: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET and sched_setaffinity only read and write it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn thread_ticks(tid: i64) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")) else { return 0 };
    let Some(end) = stat.rfind(')') else { return 0 };
    let fields: Vec<&str> = stat[end + 2..].split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

fn process_ticks() -> u64 {
    stats::ProcSample::read(std::process::id()).map(|s| s.cpu_ticks).unwrap_or(0)
}

/// Runs one row. Blocks the calling thread.
pub fn run(params: &SfuParams) -> anyhow::Result<SfuOutcome> {
    epoch();
    // The SFU: its own thread and current-thread runtime, pinned to core 0.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let loudest = params.loudest;
    let pin = params.pin;
    let sfu_thread = std::thread::Builder::new().name("sfu".into()).spawn(move || {
        if pin {
            pin_current_thread(0);
        }
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as i64;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let (sfu, mut events) = Sfu::start(SfuConfig::local(loudest)).await.expect("the SFU starts");
            ready_tx.send((sfu, tid)).expect("the generator waits");
            tokio::spawn(async move { while events.recv().await.is_some() {} });
            let _ = stop_rx.await;
        });
    })?;
    let (sfu, sfu_tid) = ready_rx.recv()?;
    if params.pin {
        pin_current_thread(1);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let outcome = runtime.block_on(generate(&sfu, sfu_tid, params));
    drop(sfu);
    let _ = stop_tx.send(());
    let _ = sfu_thread.join();
    outcome
}

async fn generate(sfu: &Sfu, sfu_tid: i64, params: &SfuParams) -> anyhow::Result<SfuOutcome> {
    let received = Arc::new(AtomicU64::new(0));
    let delays = Arc::new(Mutex::new(stats::histogram()));
    let recording = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let on_media: OnMedia = {
        let (received, delays, recording) = (received.clone(), delays.clone(), recording.clone());
        Arc::new(move |_kind, payload: &[u8]| {
            received.fetch_add(1, Ordering::Relaxed);
            if recording.load(Ordering::Relaxed) && payload.len() >= 8 {
                let sent = u64::from_be_bytes(payload[..8].try_into().unwrap_or([0; 8]));
                let now = epoch().elapsed().as_nanos() as u64;
                let mut h = delays.lock().unwrap_or_else(|e| e.into_inner());
                let _ = h.record((now.saturating_sub(sent) / 1000).max(1));
            }
        })
    };
    let speaker = || Transceivers {
        send_audio: true,
        send_video: false,
        recv_audio: params.loudest,
        recv_video: false,
        video_layers: &[],
    };
    let listener = || Transceivers {
        send_audio: false,
        send_video: false,
        recv_audio: params.loudest,
        recv_video: false,
        video_layers: &[],
    };

    let mut speakers = Vec::with_capacity(params.speakers);
    for i in 0..params.speakers {
        let id: media::ParticipantId = format!("speaker-{i}").into();
        let client = TestClient::connect_with(speaker(), Some(on_media.clone()), |offer| async move {
            sfu.join(1, id, Role::Publisher, &offer).await
        })
        .await?;
        speakers.push(client);
    }
    let mut listeners = Vec::with_capacity(params.listeners);
    for chunk in (0..params.listeners).collect::<Vec<_>>().chunks(32) {
        let joins = chunk.iter().map(|i| {
            let id: media::ParticipantId = format!("listener-{i}").into();
            let on_media = on_media.clone();
            TestClient::connect_with(listener(), Some(on_media), move |offer| async move {
                sfu.join(1, id, Role::Listener, &offer).await
            })
        });
        for client in futures_util::future::join_all(joins).await {
            listeners.push(client?);
        }
    }
    let everyone = params.speakers + params.listeners;
    let deadline = Instant::now() + Duration::from_secs(60);
    while speakers.iter().chain(&listeners).filter(|c| c.seen().connected).count() < everyone {
        anyhow::ensure!(Instant::now() < deadline, "not every client connected within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Speakers talk at different levels, so the N-loudest selection has work to do.
    let talking = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut talkers = Vec::new();
    for (i, client) in speakers.into_iter().enumerate() {
        let talking = talking.clone();
        talkers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let level = -10 - (i as i8 % 10) * 3;
            while talking.load(Ordering::Relaxed) {
                tick.tick().await;
                let mut payload = vec![0u8; 80];
                payload[..8].copy_from_slice(&(epoch().elapsed().as_nanos() as u64).to_be_bytes());
                client.speak_payload(level, payload);
            }
        }));
    }
    // Warm up, then measure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    recording.store(true, Ordering::Relaxed);
    let forwarded_before = SfuStats::get(&sfu.stats().packets_forwarded);
    let received_before = received.load(Ordering::Relaxed);
    let (sfu_before, process_before) = (thread_ticks(sfu_tid), process_ticks());
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(params.seconds)).await;
    let secs = started.elapsed().as_secs_f64();
    let (sfu_after, process_after) = (thread_ticks(sfu_tid), process_ticks());
    let forwarded = SfuStats::get(&sfu.stats().packets_forwarded) - forwarded_before;
    let got = received.load(Ordering::Relaxed) - received_before;
    recording.store(false, Ordering::Relaxed);
    talking.store(false, Ordering::Relaxed);
    for talker in talkers {
        let _ = talker.await;
    }
    drop(listeners);

    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let sfu_cpu = (sfu_after - sfu_before) as f64 / hz / secs * 100.0;
    let clients_cpu =
        (process_after - process_before).saturating_sub(sfu_after - sfu_before) as f64 / hz / secs * 100.0;
    let forwarded_per_sec = forwarded as f64 / secs;
    let delays: Histogram<u64> = delays.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(SfuOutcome {
        speakers: params.speakers,
        listeners: params.listeners,
        loudest: params.loudest,
        seconds: secs,
        forwarded_per_sec,
        received_per_sec: got as f64 / secs,
        sfu_cpu_percent: sfu_cpu,
        clients_cpu_percent: clients_cpu,
        sfu_us_per_packet: if forwarded > 0 { sfu_cpu / 100.0 * secs * 1e6 / forwarded as f64 } else { 0.0 },
        delay: Latency::of(&delays),
        load_average: stats::load_average(),
        machine: stats::machine(),
    })
}
