//! SIGTERM while requests are in flight: the real binary drains, exits 0, and every acknowledged write is in
//! the database.

use crate::common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ticketing::creators::AccountName;
use ticketing::testing::RawSql;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("gateway-sigterm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db_url = format!("sqlite://{}/gw.db", dir.display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env("GATEWAY_SERVER__PORT", "0")
        .env("GATEWAY_DATA_DIR", &dir)
        .env("GATEWAY_ADMIN_TOKEN", common::ADMIN_TOKEN)
        .env("GATEWAY_LOG__FORMAT", "json")
        .env("GATEWAY_LOG__FILTER", "info")
        .env("DATABASE_URL", &db_url)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start gateway binary");

    // The JSON log line `listening` carries the bound address.
    let stdout = child.stdout.take().unwrap();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let log_lines = Arc::new(Mutex::new(Vec::new()));
    let log = log_lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["message"] == "listening" {
                    let _ = addr_tx.send(v["address"].as_str().unwrap_or_default().to_owned());
                }
            }
            log.lock().unwrap().push(line);
        }
    });
    let address = addr_rx.recv_timeout(Duration::from_secs(30)).expect("gateway logs its address");
    let base = format!("http://{address}");

    // Eight writers set tiers for fresh accounts as fast as they can.
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let server_errors = Arc::new(Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..8 {
        let base = base.clone();
        let acknowledged = acknowledged.clone();
        let server_errors = server_errors.clone();
        writers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            for i in 0.. {
                if Instant::now() > deadline {
                    break;
                }
                let account = format!("load{w}x{i}");
                let res = client
                    .put(format!("{base}/api/admin/creators/{account}/tier"))
                    .bearer_auth(common::ADMIN_TOKEN)
                    .json(&serde_json::json!({ "tier": "premium" }))
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().is_success() => {
                        acknowledged.lock().unwrap().insert(account);
                    }
                    Ok(r) => server_errors.lock().unwrap().push(r.status().as_u16()),
                    // Refused or reset after shutdown began: the request was never acknowledged.
                    Err(_) => break,
                }
            }
        }));
    }

    common::eventually("the load is running before the signal", Duration::from_secs(20), || async {
        acknowledged.lock().unwrap().len() >= 20
    })
    .await;
    let before = acknowledged.lock().unwrap().len();
    assert!(before > 0, "load was running before the signal");
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());

    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(started.elapsed() < Duration::from_secs(25), "gateway did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for w in writers {
        w.await.unwrap();
    }
    assert!(exit.success(), "clean exit code, got {exit:?}");
    assert!(
        server_errors.lock().unwrap().is_empty(),
        "no request failed with a server error: {:?}",
        server_errors.lock().unwrap()
    );
    common::eventually("the clean shutdown is logged", Duration::from_secs(5), || async {
        log_lines.lock().unwrap().iter().any(|l| l.contains("shut down cleanly"))
    })
    .await;
    let logs = log_lines.lock().unwrap().join("\n");
    assert!(logs.contains("shut down cleanly"), "logs: {logs}");

    let store = ticketing::Store::connect(&db_url, 1).await.unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    for account in &acknowledged {
        let creator = store.creator(&AccountName::parse(account).unwrap()).await.unwrap();
        assert!(creator.is_some(), "acknowledged write for {account} was lost");
    }
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM creators").fetch_one(store.raw_pool()).await.unwrap();
    let audits: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log").fetch_one(store.raw_pool()).await.unwrap();
    assert_eq!(rows, audits, "every write committed with its audit row");
    assert!(rows as usize >= acknowledged.len());
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
