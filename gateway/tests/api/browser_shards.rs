//! Shards and the stage in a real browser (issue 24): headless Chromium runs the example event scene for a host
//! and three attendees in an event whose shards hold two. Both shards see the host's avatar move and its
//! announcement; attendees of different shards never see each other; an attendee moves to the other shard. The
//! creator's dashboard at a phone's 390×844 then shows the event's "Avatars per shard" and the chart of attendees
//! per shard over time, readable and within the screen. Screenshots of the two shards seeing the same host and
//! of the dashboard go to docs/img/.
//!
//! This test is the orchestrator: it starts the real gateway on SQLite, sells tickets through the real money
//! path, then runs `node browser-tests/shards.mjs '<json>'` and asserts on the JSON it prints.

use crate::browser::{repo_root, run_driver};
use crate::{attendance_support, common};

use std::time::Duration;

use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_see_the_same_host_and_never_each_other() {
    let web = repo_root().join("web");
    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |s| s.web_dir = Some(web)).await;
    let event_id = attendance_support::event(&app.store, 10, 0).await;
    sqlx::query("UPDATE events SET shard_size = 2 WHERE id = $1")
        .bind(event_id)
        .execute(ticketing::testing::RawSql::raw_pool(&app.store))
        .await
        .unwrap();
    let expires = ticketing::now_ms() + 10 * attendance_support::MIN;
    let secret = &attendance_support::SECRET;
    let host =
        gateway::auth::session_token::issue(secret, event_id, None, Some("alice".into()), "alice".into(), expires).0;
    let mut attendees = Vec::new();
    for wallet in ["ann-w", "ben-w", "cat-w"] {
        let ticket = attendance_support::ticket(&app.store, event_id, wallet).await;
        attendees
            .push(gateway::auth::session_token::issue(secret, event_id, Some(ticket), None, wallet.into(), expires).0);
    }
    let screenshots = repo_root().join("docs/img");
    std::fs::create_dir_all(&screenshots).unwrap();
    let args = json!({
        "base_url": app.address,
        "event_id": event_id,
        "artifacts_dir": repo_root().join("test-artifacts"),
        "screenshots_dir": screenshots,
        "host": host,
        "ann": attendees[0],
        "ben": attendees[1],
        "cat": attendees[2],
        "creator_session": {
            "token": attendance_support::creator_token("alice"), "token_type": "Bearer", "account": "alice",
            "tier": "pro", "expires_at": chrono::DateTime::from_timestamp_millis(expires).unwrap().to_rfc3339(),
        },
        "timeout_ms": 100_000,
    });
    let result = run_driver("shards.mjs", &args, Duration::from_secs(120)).await;
    eprintln!("{}", serde_json::to_string_pretty(&result).unwrap());

    let ids = &result["ids"];
    let id = |who: &str| ids[who].as_str().unwrap().to_owned();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        json!(v)
    };
    assert_eq!(result["shards"], json!({ "host": 0, "host_on_stage": true, "ann": 0, "ben": 0, "cat": 1 }));
    // Before the move: shard 0 sees the host and each other, shard 1 only the host.
    assert_eq!(result["before"]["ann"], sorted(vec![id("host"), id("ben")]));
    assert_eq!(result["before"]["cat"], json!([id("host")]));
    // Both shards saw the host's avatar move, and its announcement.
    assert!(
        result["host_move_seen_ms"]["ann"].as_u64().is_some() && result["host_move_seen_ms"]["cat"].as_u64().is_some()
    );
    assert_eq!(result["announcements"]["ann"], json!(["The show starts now"]));
    assert_eq!(result["announcements"]["cat"], json!(["The show starts now"]));
    // After Ben's move: Ann sees only the host; Ben and Cat see each other and the host.
    assert_eq!(result["after"]["ben_shard"], 1);
    assert_eq!(result["after"]["ann"], json!([id("host")]));
    assert_eq!(result["after"]["cat"], sorted(vec![id("host"), id("ben")]));
    assert_eq!(result["after"]["ben"], sorted(vec![id("host"), id("cat")]));
    assert_eq!(result["external_requests"], json!([]), "pages reached outside the gateway");
    assert_eq!(result["page_errors"], json!([]), "uncaught errors in the pages");
    assert!(screenshots.join("shards-shard0.png").exists() && screenshots.join("shards-shard1.png").exists());

    // The dashboard on a phone: the shard size in the event form, and one line per shard in the live view's chart.
    let dashboard = &result["dashboard"];
    let field = &dashboard["shard_field"];
    assert_eq!((field["value"].as_str(), field["label"].as_str()), (Some("2"), Some("Avatars per shard")), "{field}");
    assert!(field["label_font_px"].as_f64().unwrap() >= 14.0, "a readable label: {field}");
    assert!(field["field"]["right"].as_f64().unwrap() <= 390.0 && field["field"]["height"].as_f64().unwrap() >= 24.0);
    assert_eq!(dashboard["form_overflow"], json!([]), "the event form fits 390 px");
    let chart = &dashboard["chart"];
    assert!(chart["right"].as_f64().unwrap() <= 390.0 && chart["left"].as_f64().unwrap() >= 0.0, "{chart}");
    // Drawn for the width it is shown at, so its 12 px text is shown at 12 px.
    let (natural, shown) = (chart["natural_width"].as_f64().unwrap(), chart["shown_width"].as_f64().unwrap());
    assert!((natural - shown).abs() <= 2.0, "drawn {natural} px wide, shown at {shown} px");
    assert_eq!(dashboard["chart_svg"], json!({ "lines": 2, "legend": ["Shard 0", "Shard 1"] }));
    assert_eq!(dashboard["overflow"], json!([]), "the live view fits 390 px");
    for shot in ["dashboard-shard-size-phone.png", "dashboard-shards-chart-phone.png"] {
        assert!(screenshots.join(shot).exists(), "{shot}");
    }
}
