//! Resume after a drop and persistent entities in real browsers (issue 26): two Chromium pages in the example
//! scene; alice's WebSocket is cut (a TCP proxy in the driver destroys it: no close frame either way, as when
//! a network goes) and her adapter resumes by itself; bob still sees her avatar, where she is now, and never
//! saw her leave. The scene's persistent prop, moved by alice, is seen by carol joining after everyone left,
//! and again after the gateway restarted.
//!
//! The orchestrator: the real gateway on SQLite, tickets through the real money path, then
//! `node browser-tests/resume.mjs '<json>'` twice (before and after the restart). See browser-tests/README.md.

use crate::browser::{browser_prerequisites, run_driver};
use crate::{attendance_support, common};

use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_page_resumes_by_itself_and_late_joiners_see_the_persistent_prop() {
    let started = Instant::now();
    let root = browser_prerequisites();
    let web = root.join("web");
    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |s| s.web_dir = Some(web.clone())).await;
    let event_id = attendance_support::event(&app.store, 10, 0).await;
    let mut tickets = Vec::new();
    for wallet in ["alice-w", "bob-w", "carol-w"] {
        tickets.push((attendance_support::ticket(&app.store, event_id, wallet).await, wallet));
    }
    let token = |i: usize| attendance_support::token(event_id, tickets[i].0, tickets[i].1);
    let args = json!({
        "base_url": app.address, "event_id": event_id, "artifacts_dir": root.join("test-artifacts"), "phase": "live",
        "alice": token(0), "bob": token(1), "carol": token(2), "timeout_ms": 110_000,
    });
    let result = run_driver("resume.mjs", &args, Duration::from_secs(120)).await;
    eprintln!("{}", serde_json::to_string_pretty(&result).unwrap());

    // Alice came back by herself, under the same client id, within two seconds of the cut.
    assert_eq!(result["alice_id_after"], result["alice_id"], "{result}");
    let resumed_ms = result["resumed_ms"].as_u64().unwrap();
    assert!(resumed_ms < 2000, "resumed {resumed_ms} ms after the cut");
    assert!(result["first_live_frame_ms"].as_u64().unwrap() < 2000, "{result}");
    let alice_log: Vec<&str> = result["alice_log"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(
        alice_log,
        ["peer-joined", "reconnecting", "resumed"],
        "bob joined, alice dropped and resumed, once: {result}"
    );
    // Bob saw her reconnecting and back, never leave; her avatar on his page is the one from before the drop.
    let bob_log: Vec<String> =
        result["bob_log"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect();
    assert!(!bob_log.iter().any(|n| n == "peer-left"), "{bob_log:?}");
    assert!(bob_log.iter().any(|n| n == "peer-resumed"), "{bob_log:?}");
    assert_eq!(result["bob_same_avatar_element"], true);
    // Carol, alone in the room, got the prop from the gateway, owned by whoever held it last.
    let owner = result["carol_prop_owner"].as_str().unwrap();
    assert!(owner == result["alice_id"] || owner == result["bob_id"], "{result}");
    assert_eq!(result["page_errors"], json!([]));
    assert_eq!(result["external_requests"], json!([]));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("gateway_room_resumes_succeeded_total 1"), "{metrics}");

    // The gateway restarts on the same database; a joiner still gets the prop where alice left it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.store.room_entities(event_id, 10).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the prop was not stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let db_url = app.db_url();
    app.shutdown.cancel();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app.server.is_finished() {
        assert!(Instant::now() < deadline, "the gateway did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let data_dir = std::env::temp_dir().join(format!("gateway-browser-restart-{}", std::process::id()));
    let mut settings = common::test_settings(&db_url, data_dir.clone());
    settings.web_dir = Some(web);
    let restarted = gateway::startup::Application::build(settings).await.unwrap();
    let address = format!("http://{}", restarted.local_addr());
    let shutdown = restarted.shutdown_token();
    let server = tokio::spawn(restarted.run_until_stopped());
    let args = json!({
        "base_url": address, "event_id": event_id, "artifacts_dir": root.join("test-artifacts"), "phase": "restarted",
        "carol": token(2), "timeout_ms": 60_000,
    });
    let again = run_driver("resume.mjs", &args, Duration::from_secs(70)).await;
    assert_eq!(again["prop_owner"], result["carol_prop_owner"], "{again}");
    assert_eq!(again["page_errors"], json!([]));
    shutdown.cancel();
    let _ = server.await;
    let _ = std::fs::remove_dir_all(data_dir);
    eprintln!(
        "browser resume test: cut → resumed {} ms, cut → first live frame {} ms; whole test {} ms",
        result["resumed_ms"],
        result["first_live_frame_ms"],
        started.elapsed().as_millis()
    );
}
