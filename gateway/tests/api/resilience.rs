//! The gateway under a full disk and under hostile connections: nothing acknowledged is lost, the store recovers
//! on its own, and the health endpoint keeps answering at the connection cap.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A small tmpfs mounted for one test and unmounted when dropped. The test runs as root (CI does).
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(size_kib: u64) -> SmallDisk {
        let dir = std::env::temp_dir().join(format!("gateway-smalldisk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_kib}k"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs needs root, as CI runs: {status}");
        SmallDisk { dir }
    }

    /// Writes a filler file until the filesystem refuses more.
    fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            if std::io::Write::write_all(&mut file, &chunk).is_err() {
                break;
            }
        }
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A connection of its own to the SQLite file: it sees only what was committed.
async fn committed(db: &Path, sql: &str, key: &str) -> bool {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let found: Option<i64> = sqlx::query_scalar(sql).bind(key).fetch_optional(&pool).await.unwrap();
    pool.close().await;
    found.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_loses_no_acknowledged_write_and_the_store_recovers_by_itself() {
    sqlx::any::install_default_drivers();
    let disk = SmallDisk::mount(3 * 1024);
    let db = disk.dir.join("gateway.db");
    let url = format!("sqlite://{}", db.display());
    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |s| {
        s.database.url = url;
        // Forty quotes from one address: the open-quote limit would answer 429 long before the disk fills.
        s.payments.max_open_quotes_per_client = 0;
    })
    .await;
    let event_id = app.usd_event_on_sale("Full disk", 500, "HIVE").await;
    let quote = |wallet: String| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/api/events/purchase"))
                .json(&json!({ "event_id": event_id.to_string(), "payment_method": "hive", "wallet_address": wallet }))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(quote("before-fill".into()).await.status(), StatusCode::CREATED);

    let filler = disk.fill();
    let (mut acknowledged_quotes, mut acknowledged_challenges, mut refused) = (Vec::new(), Vec::new(), 0);
    for i in 0..40 {
        let res = quote(format!("buyer{i}")).await;
        match res.status() {
            StatusCode::CREATED => {
                acknowledged_quotes.push(res.json::<Value>().await.unwrap()["quote_id"].as_str().unwrap().to_owned())
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(res.headers().contains_key("retry-after"), "a 503 tells when to retry");
                assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "store_unavailable");
                refused += 1;
            }
            other => panic!("purchase on a full disk answered {other}: {:?}", res.text().await),
        }
        let res = app.get(&format!("/api/creators/login/challenge?account=creator{i}")).await;
        match res.status() {
            StatusCode::OK => {
                acknowledged_challenges.push(res.json::<Value>().await.unwrap()["nonce"].as_str().unwrap().to_owned())
            }
            StatusCode::SERVICE_UNAVAILABLE => refused += 1,
            other => panic!("challenge on a full disk answered {other}"),
        }
        let res = app
            .admin(reqwest::Method::PUT, &format!("/api/admin/creators/tier{i}/tier"))
            .json(&json!({ "tier": "pro" }))
            .send()
            .await
            .unwrap();
        assert!(
            matches!(res.status(), StatusCode::OK | StatusCode::SERVICE_UNAVAILABLE),
            "set-tier answered {}",
            res.status()
        );
        if res.status() == StatusCode::SERVICE_UNAVAILABLE {
            refused += 1;
        }
    }
    assert!(refused > 0, "the disk never filled up: the test exercised nothing");

    // Every write the API acknowledged is committed, as another connection sees it.
    for id in &acknowledged_quotes {
        assert!(
            committed(&db, "SELECT 1 FROM quotes WHERE id = $1", id).await,
            "quote {id} was acknowledged but not committed"
        );
    }
    for nonce in &acknowledged_challenges {
        assert!(
            committed(&db, "SELECT 1 FROM creator_login_challenges WHERE nonce = $1", nonce).await,
            "challenge {nonce} lost"
        );
    }

    // Space returns: writes succeed again on their own, promptly (not after a 10 s lock wait).
    std::fs::remove_file(filler).unwrap();
    let freed = Instant::now();
    let recovered = loop {
        let res = quote("after-free".into()).await;
        if res.status() == StatusCode::CREATED {
            break res.json::<Value>().await.unwrap()["quote_id"].as_str().unwrap().to_owned();
        }
        assert!(freed.elapsed() < Duration::from_secs(5), "still failing after space returned: {}", res.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = freed.elapsed();
    assert!(took < Duration::from_secs(2), "recovery took {took:?}");
    assert!(committed(&db, "SELECT 1 FROM quotes WHERE id = $1", &recovered).await);
    for i in 0..5 {
        let started = Instant::now();
        let res = app.get(&format!("/api/creators/login/challenge?account=later{i}")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(started.elapsed() < Duration::from_secs(2), "a write waited {:?}", started.elapsed());
        let nonce = res.json::<Value>().await.unwrap()["nonce"].as_str().unwrap().to_owned();
        assert!(committed(&db, "SELECT 1 FROM creator_login_challenges WHERE nonce = $1", &nonce).await);
    }
    eprintln!(
        "full disk: {} quotes and {} challenges acknowledged and committed, {refused} refused with 503; recovered {took:?} after space returned",
        acknowledged_quotes.len(),
        acknowledged_challenges.len()
    );
    app.shutdown.cancel();
}

/// `/healthz` from a fresh connection, timed.
async fn healthz(app: &common::TestApp) -> (StatusCode, Duration) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let started = Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(3), client.get(app.url("/healthz")).send()).await;
    let status = match res {
        Ok(Ok(res)) => res.status(),
        Ok(Err(e)) => panic!("healthz failed: {e}"),
        Err(_) => panic!("healthz did not answer within 3 s"),
    };
    (status, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_clients_cannot_hold_the_gateway() {
    const CAP: usize = 200;
    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |s| {
        s.server.max_connections = CAP;
        s.server.overflow_connections = 16;
        s.server.header_read_timeout_secs = 2;
    })
    .await;
    let address = app.address.trim_start_matches("http://").to_owned();
    // Fill the cap: half idle (connect, send nothing), half slowloris (a header byte at a time).
    let mut idle = Vec::new();
    for _ in 0..CAP / 2 {
        idle.push(TcpStream::connect(&address).await.unwrap());
    }
    let mut slow = Vec::new();
    for _ in 0..CAP / 2 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        slow.push(stream);
    }
    // Wait until the server counts them all.
    let started = Instant::now();
    loop {
        let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        if metrics.lines().any(|l| l == format!("gateway_http_connections_open {CAP}")) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "connections not counted: {}",
            metrics.lines().filter(|l| l.contains("connections_open")).collect::<Vec<_>>().join(" ")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // At the cap: health answers within a second, and other requests get a prompt 503 with Retry-After.
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let (status, took) = healthz(&app).await;
        assert_eq!(status, StatusCode::OK);
        worst = worst.max(took);
    }
    assert!(worst < Duration::from_secs(1), "healthz took {worst:?} at the cap");
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let started = Instant::now();
    let res = client.get(app.url("/api/events")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "over_capacity");

    // The slow and idle ones are cut off at the header timeout, sending a little more each second.
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        for stream in &mut slow {
            let _ = stream.write_all(b"X").await;
        }
        let (status, took) = healthz(&app).await;
        assert_eq!(status, StatusCode::OK);
        worst = worst.max(took);
        let res = client.get(app.url("/api/events")).send().await.unwrap();
        if res.status() == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "held connections were not timed out");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(worst < Duration::from_secs(1), "healthz took {worst:?}");
    // The server closed them: each reads end-of-stream.
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    for stream in idle.iter_mut().take(5) {
        let read =
            tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await.expect("closed by the server");
        assert!(matches!(read, Ok(0) | Err(_)), "an idle connection got {read:?} instead of being closed");
    }
    eprintln!("connection cap {CAP}: healthz worst {worst:?}; idle and slowloris clients cut off after the 2 s header timeout");
}
