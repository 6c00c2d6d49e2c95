//! The published figures: the "Room relay: ours vs networked-aframe" section of docs/BENCHMARKS.md and the
//! chart docs/relay-benchmark.svg, from the latest row of each scenario in the results file.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

use crate::scenarios::Outcome;
use crate::stats::{load_average, machine};
use crate::target::workspace_root;

const HEADING: &str = "## Room relay: ours vs networked-aframe";
const OURS: &str = "ours";
const NAF: &str = "networked-aframe";

/// The latest outcome per (scenario, target, size, rooms, backend, joins in flight).
pub fn latest(results: &Path) -> anyhow::Result<Rows> {
    let text = std::fs::read_to_string(results).with_context(|| format!("read {}", results.display()))?;
    let mut rows = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let o: Outcome = serde_json::from_str(line).with_context(|| format!("bad results line {line}"))?;
        let key = (
            o.scenario.clone(),
            o.target.clone(),
            o.peers_per_room,
            o.rooms,
            o.backend.clone().unwrap_or_default(),
            in_flight(&o),
        );
        rows.insert(key, o);
    }
    Ok(rows)
}

fn num(v: f64) -> String {
    if v >= 100.0 {
        let s = format!("{v:.0}");
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(num).unwrap_or_else(|| "–".into())
}

/// `ours ÷ baseline` when `higher_is_better`, else `baseline ÷ ours`: above 1 means ours is better.
fn ratio(ours: Option<f64>, naf: Option<f64>, higher_is_better: bool) -> String {
    match (ours, naf) {
        (Some(o), Some(n)) if o > 0.0 && n > 0.0 => {
            let r = if higher_is_better { o / n } else { n / o };
            format!("{r:.1}×")
        }
        _ => "–".into(),
    }
}

struct Figure {
    name: &'static str,
    get: fn(&Outcome) -> Option<f64>,
    higher_is_better: bool,
}

const RELAY: &[Figure] = &[
    Figure { name: "delivered msgs/s", get: |o| Some(o.delivered_per_sec), higher_is_better: true },
    Figure { name: "latency p50 (ms)", get: |o| o.latency.map(|l| l.p50_ms), higher_is_better: false },
    Figure { name: "latency p99 (ms)", get: |o| o.latency.map(|l| l.p99_ms), higher_is_better: false },
    Figure { name: "latency max (ms)", get: |o| o.latency.map(|l| l.max_ms), higher_is_better: false },
    Figure {
        name: "lost / owed",
        get: |o| Some(if o.expected > 0 { o.lost as f64 / o.expected as f64 } else { 0.0 }),
        higher_is_better: false,
    },
    Figure { name: "server CPU (% of a core)", get: |o| o.cpu_percent, higher_is_better: false },
    Figure { name: "server peak RSS (MiB)", get: |o| o.peak_rss_mib, higher_is_better: false },
    Figure {
        name: "connections ok",
        get: |o| Some(o.connections_ok as f64 / o.connections_attempted.max(1) as f64),
        higher_is_better: true,
    },
];

const SLOW: &[Figure] = &[
    Figure { name: "slow readers' deliveries", get: |o| o.slow_delivered.map(|v| v as f64), higher_is_better: true },
    Figure { name: "slow readers disconnected", get: |o| o.slow_closed.map(|v| v as f64), higher_is_better: false },
];

const JOIN: &[Figure] = &[
    Figure { name: "joins/s", get: |o| o.joins_per_sec, higher_is_better: true },
    Figure { name: "join p50 (ms)", get: |o| o.join.map(|l| l.p50_ms), higher_is_better: false },
    Figure { name: "join p99 (ms)", get: |o| o.join.map(|l| l.p99_ms), higher_is_better: false },
    Figure { name: "to first frame p99 (ms)", get: |o| o.admission.map(|l| l.p99_ms), higher_is_better: false },
    Figure { name: "server CPU (% of a core)", get: |o| o.cpu_percent, higher_is_better: false },
    Figure {
        name: "connections ok",
        get: |o| Some(o.connections_ok as f64 / o.connections_attempted.max(1) as f64),
        higher_is_better: true,
    },
];

const IDLE: &[Figure] = &[
    Figure { name: "connections held", get: |o| Some(o.connections_ok as f64), higher_is_better: true },
    Figure { name: "RSS per connection (KiB)", get: |o| o.rss_per_connection_kib, higher_is_better: false },
    Figure { name: "server peak RSS (MiB)", get: |o| o.peak_rss_mib, higher_is_better: false },
    Figure { name: "admissions/s", get: |o| o.joins_per_sec, higher_is_better: true },
];

pub fn write(results: &Path) -> anyhow::Result<()> {
    let rows = latest(results)?;
    let section = render(&rows);
    let doc_path = workspace_root().join("docs/BENCHMARKS.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let new_doc = match doc.find(HEADING) {
        Some(start) => {
            let after = &doc[start + HEADING.len()..];
            let end = after.find("\n## ").map(|i| start + HEADING.len() + i + 1).unwrap_or(doc.len());
            format!("{}{}{}", &doc[..start], section, &doc[end..])
        }
        None => format!("{}\n{}", doc.trim_end(), format_args!("\n{section}")),
    };
    std::fs::write(&doc_path, new_doc)?;
    chart(&rows, &workspace_root().join("docs/relay-benchmark.svg"))?;
    eprintln!("wrote {} and docs/relay-benchmark.svg", doc_path.display());
    Ok(())
}

pub type Rows = BTreeMap<(String, String, usize, usize, String, usize), Outcome>;

/// Joins in flight in a join storm (rows from before it was recorded ran 32); 0 for other scenarios.
fn in_flight(o: &Outcome) -> usize {
    if o.scenario == "join-storm" {
        o.concurrency.unwrap_or(32)
    } else {
        0
    }
}

/// At most this many joins in flight measure a join's service time rather than its wait in the queue.
const FEW_IN_FLIGHT: usize = 4;

fn find<'a>(rows: &'a Rows, scenario: &str, target: &str) -> Vec<&'a Outcome> {
    let mut v: Vec<&Outcome> = rows.values().filter(|o| o.scenario == scenario && o.target == target).collect();
    v.sort_by_key(|o| (o.peers_per_room, o.rooms));
    v
}

fn table(out: &mut String, title: &str, ours: Option<&Outcome>, naf: Option<&Outcome>, figures: &[Figure]) {
    out.push_str(&format!(
        "\n**{title}**\n\n| figure | ours | networked-aframe | ours vs baseline |\n|---|---:|---:|---:|\n"
    ));
    for f in figures {
        let o = ours.and_then(|o| (f.get)(o));
        let n = naf.and_then(|n| (f.get)(n));
        out.push_str(&format!("| {} | {} | {} | {} |\n", f.name, opt(o), opt(n), ratio(o, n, f.higher_is_better)));
    }
    let load: Vec<String> = [ours, naf].iter().flatten().map(|o| format!("{:.1}", o.load_average)).collect();
    let notes: Vec<String> = [("ours", ours), ("baseline", naf)]
        .iter()
        .filter_map(|(who, o)| o.map(|o| (who, o)))
        .flat_map(|(who, o)| o.notes.iter().map(move |n| format!("{who}: {n}")))
        .collect();
    out.push_str(&format!("\nLoad average at the runs: {}. {}\n", load.join(" / "), notes.join("; ")));
}

fn render(rows: &Rows) -> String {
    let mut out = String::new();
    out.push_str(HEADING);
    out.push_str("\n\nMeasured by `load-tests` (see load-tests/src): simulated NAF clients join a room and broadcast `um` entity \
updates of ~300 bytes at 15 Hz, one in 30 sent as a guaranteed message, each carrying its send time; receivers \
record one-way latency in an HDR histogram. Our clients join with real tickets (quote + confirmed payment in the \
store), a real EIP-191 signature over the gateway's challenge and a session token; the baseline is \
networked-aframe 0.14.3's own `server/socketio-server.js` under node, spoken to over Engine.IO v4 WebSockets. \
The server is pinned to core 0 (`taskset -c 0`), the generator to core 1; server CPU and peak RSS come from \
/proc. \"ours vs baseline\" is above 1× where ours is better. Other builds ran on the same machine during these \
runs, so the load average is given with each.\n\n");
    let dates: Vec<&str> = rows.values().map(|o| o.date.as_str()).collect();
    out.push_str(&format!(
        "* Command: `cargo run --release -p load-tests -- all` (or one row: `cargo run --release -p load-tests -- <scenario> --target ours|naf [--peers N] [--seconds S]`; `-- report` rewrites this section)\n\
         * Machine: {}\n* Runs: {} to {}; load average now {:.1}\n",
        machine(),
        dates.iter().min().copied().unwrap_or("–"),
        dates.iter().max().copied().unwrap_or("–"),
        load_average()
    ));
    out.push_str("\n![p99 latency and delivered messages per second against room size](relay-benchmark.svg)\n");

    let fan_ours = find(rows, "fanout", OURS);
    let fan_naf = find(rows, "fanout", NAF);
    let mut sizes: Vec<usize> = fan_ours.iter().chain(&fan_naf).map(|o| o.peers_per_room).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for size in &sizes {
        let o = fan_ours.iter().find(|o| o.peers_per_room == *size).copied();
        let n = fan_naf.iter().find(|o| o.peers_per_room == *size).copied();
        let owed = (size * (size - 1)) as f64 * 15.0;
        table(
            &mut out,
            &format!("Fan-out: one room of {size} peers at 15 Hz (≈{} deliveries/s owed)", num(owed)),
            o,
            n,
            RELAY,
        );
    }
    let storm = |o: &&Outcome| in_flight(o) > FEW_IN_FLIGHT;
    let few = |o: &&Outcome| in_flight(o) <= FEW_IN_FLIGHT;
    let any = |_: &&Outcome| true;
    for (scenario, title, figures, pick) in [
        (
            "rooms",
            "Many rooms: 100 rooms × 10 peers, one join-and-leave per room every 2 s".to_owned(),
            RELAY,
            &any as &dyn Fn(&&Outcome) -> bool,
        ),
        ("slow", "Slow consumers: one room of 50, 10% of peers read one message per 20 ms".to_owned(), RELAY, &any),
        ("join-storm", "Join storm: 1,000 ticketed joins, 32 in flight, into rooms of 50".to_owned(), JOIN, &storm),
        ("join-storm", join_title(rows, FEW_IN_FLIGHT), JOIN, &few),
        ("idle", "Idle capacity: authenticated connections held open in rooms of 10".to_owned(), IDLE, &any),
    ] {
        let o: Vec<&Outcome> = find(rows, scenario, OURS).into_iter().filter(pick).collect();
        let n: Vec<&Outcome> = find(rows, scenario, NAF).into_iter().filter(pick).collect();
        if o.is_empty() && n.is_empty() {
            continue;
        }
        let mut t = String::new();
        table(&mut t, &title, o.last().copied(), n.last().copied(), figures);
        if scenario == "slow" {
            let mut extra = String::new();
            table(&mut extra, "Slow consumers: what the slow tenth got", o.last().copied(), n.last().copied(), SLOW);
            t.push_str(&extra);
        }
        out.push_str(&t);
    }
    let quotes = find(rows, "quotes", OURS);
    if !quotes.is_empty() {
        out.push_str("\n**Quote creation** (`Purchases::create_quote`, 8 concurrent callers, fresh database; goal ≥ 1,000/s on SQLite)\n\n| engine | quotes/s | p50 (ms) | p99 (ms) | failed | load average |\n|---|---:|---:|---:|---:|---:|\n");
        for q in quotes {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {:.1} |\n",
                q.backend.as_deref().unwrap_or("?"),
                opt(q.quotes_per_sec),
                opt(q.latency.map(|l| l.p50_ms)),
                opt(q.latency.map(|l| l.p99_ms)),
                q.lost,
                q.load_average
            ));
        }
    }
    out.push('\n');
    out
}

/// The title of the few-in-flight join table, from its latest row of ours.
fn join_title(rows: &Rows, few: usize) -> String {
    let row = find(rows, "join-storm", OURS).into_iter().rfind(|o| in_flight(o) <= few);
    let (joins, in_flight) = row.map_or((0, 1), |o| (o.connections_attempted, in_flight(o)));
    format!(
        "Join latency with few in flight: {joins} ticketed joins, {in_flight} at a time (service time, not queueing)"
    )
}

fn chart(rows: &Rows, path: &Path) -> anyhow::Result<()> {
    let series = |target: &str| -> Vec<(usize, f64, f64)> {
        find(rows, "fanout", target)
            .into_iter()
            .filter_map(|o| o.latency.map(|l| (o.peers_per_room, l.p99_ms.max(0.01), o.delivered_per_sec.max(1.0))))
            .collect()
    };
    let (ours, naf) = (series(OURS), series(NAF));
    let max_x = ours.iter().chain(&naf).map(|s| s.0).max().unwrap_or(50).max(50) as f64 * 1.1;
    let max_p99 = ours.iter().chain(&naf).map(|s| s.1).fold(1.0, f64::max) * 2.0;
    let max_rate = ours.iter().chain(&naf).map(|s| s.2).fold(1000.0, f64::max) * 2.0;
    let root = SVGBackend::new(path, (960, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(480);
    let colours = [(OURS, &ours, RGBColor(0x1f, 0x77, 0xb4)), (NAF, &naf, RGBColor(0xd6, 0x27, 0x28))];

    let mut c = ChartBuilder::on(&left)
        .caption("p99 one-way latency (ms, log)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..max_x, (0.01f64..max_p99).log_scale())?;
    c.configure_mesh().x_desc("peers in the room").draw()?;
    for (name, data, colour) in colours {
        let pts: Vec<(f64, f64)> = data.iter().map(|s| (s.0 as f64, s.1)).collect();
        c.draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
        c.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, colour.filled())))?;
    }
    c.configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;

    let mut c = ChartBuilder::on(&right)
        .caption("delivered messages/s (log)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..max_x, (100f64..max_rate).log_scale())?;
    c.configure_mesh().x_desc("peers in the room").draw()?;
    for (name, data, colour) in colours {
        let pts: Vec<(f64, f64)> = data.iter().map(|s| (s.0 as f64, s.2)).collect();
        c.draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
        c.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, colour.filled())))?;
    }
    c.configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}
