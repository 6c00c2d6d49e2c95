//! `kill -9` of the real gateway binary: attendance loses at most the last flush interval. What was flushed
//! before the kill is in the store; the restart closes the cut-off session as `interrupted`.

use crate::{attendance_support, common};

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use attendance_support::*;
use serde_json::json;
use ticketing::testing::RawSql;

const FLUSH_MS: u64 = 300;

/// Starts the binary on `db_url`; returns the child and its `http://` address from the `listening` log line.
fn start(dir: &std::path::Path, db_url: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env("GATEWAY_SERVER__PORT", "0")
        .env("GATEWAY_DATA_DIR", dir)
        .env("GATEWAY_ROOMS__ATTENDANCE_FLUSH_MS", FLUSH_MS.to_string())
        .env("GATEWAY_RATES__SOURCE", "static")
        .env("GATEWAY_LOG__FORMAT", "json")
        .env("GATEWAY_LOG__FILTER", "info")
        .env("DATABASE_URL", db_url)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start gateway binary");
    let address = common::listening_address(&mut child, Duration::from_secs(30));
    (child, address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_at_most_the_flush_interval() {
    let dir = std::env::temp_dir().join(format!("gateway-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The tests' secret, as the development secret file (so session tokens made here are accepted).
    std::fs::write(dir.join("dev-secret"), "11".repeat(32)).unwrap();
    let db_url = format!("sqlite://{}/gw.db", dir.display());
    let store = ticketing::Store::connect(&db_url, 2).await.unwrap();
    let event_id = event(&store, 10, 0).await;
    let t = ticket(&store, event_id, "crash-w").await;

    let (mut child, base) = start(&dir, &db_url);
    let mut ws = connect(&base, event_id, &token(event_id, t, "crash-w")).await;
    next_of(&mut ws, "welcome").await;
    send(&mut ws, json!({ "type": "chat", "text": "one" })).await;
    send(&mut ws, json!({ "type": "chat", "text": "two" })).await;
    send(&mut ws, json!({ "type": "ping", "client_time": 1 })).await;
    next_of(&mut ws, "pong").await;
    // Within a flush interval both chats and the open session are on disk; the kill comes after that.
    common::eventually("both chats flushed", Duration::from_millis(FLUSH_MS * 50), || async {
        store.attendance_sessions(event_id).await.unwrap().first().is_some_and(|r| r.chat_messages == 2)
    })
    .await;
    let status = Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(!exit.success(), "killed, not exited: {exit:?}");
    drop(ws);

    let rows = store.attendance_sessions(event_id).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].chat_messages, rows[0].left_at), (2, None), "flushed before the kill: {rows:?}");

    // The same node restarts on the same file and closes what the kill cut off.
    let (mut child, _base) = start(&dir, &db_url);
    let rows = store.attendance_sessions(event_id).await.unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.chat_messages, 2);
    assert_eq!(row.end_reason.as_deref(), Some("interrupted"));
    assert!(row.left_at.is_some() && row.duration_secs.is_some(), "{row:?}");
    let (count, total): (i64, i64) =
        sqlx::query_as("SELECT access_count, total_duration_secs FROM tickets WHERE id = $1")
            .bind(t)
            .fetch_one(store.raw_pool())
            .await
            .unwrap();
    assert_eq!((count, total), (1, row.duration_secs.unwrap()));
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
