//! The routes the web pages draw with, on both databases: the checkout's QR code of a quote's payment URI, and
//! the creator dashboard's SVG charts with their access rules.

use crate::{common, creator_support};

use creator_support::token_for;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn on_sale_event(app: &common::TestApp) -> i64 {
    app.usd_event_on_sale("Show <b>&", 10, "HIVE,HBD").await
}

async fn error_code(res: reqwest::Response) -> (StatusCode, String) {
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

async fn get_with(app: &common::TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(app.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

app_test!(the_qr_code_encodes_the_quotes_payment_uri, |app| async move {
    let event_id = on_sale_event(&app).await;
    let body = json!({ "event_id": event_id, "payment_method": "hive", "wallet_address": "bob" });
    let quote: Value =
        app.client.post(app.url("/api/events/purchase")).json(&body).send().await.unwrap().json().await.unwrap();
    let id = quote["quote_id"].as_str().unwrap();
    let res = app.get(&format!("/api/quotes/{id}/qr.svg")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/svg+xml");
    let svg = res.text().await.unwrap();
    assert!(svg.contains("<svg") && svg.contains("<path"), "{svg}");
    let uri = quote["payment_uri"].as_str().unwrap();
    assert_eq!(svg, gateway::routes::qr::qr_svg(uri).unwrap(), "the code is the quote's payment URI");

    assert_eq!(
        error_code(app.get("/api/quotes/q_nope/qr.svg").await).await,
        (StatusCode::NOT_FOUND, "quote_not_found".into())
    );
    let long = "x".repeat(65);
    assert_eq!(
        error_code(app.get(&format!("/api/quotes/{long}/qr.svg")).await).await,
        (StatusCode::NOT_FOUND, "quote_not_found".into())
    );
});

app_test!(charts_are_drawn_for_their_creator_only, |app| async move {
    let event_id = on_sale_event(&app).await;
    let alice = token_for("alice");
    let bob = token_for("bob");

    let sales = get_with(&app, "/api/creators/me/charts/sales.svg", Some(&alice)).await;
    assert_eq!(sales.status(), StatusCode::OK);
    assert_eq!(sales.headers()["content-type"], "image/svg+xml");
    let svg = sales.text().await.unwrap();
    assert!(svg.contains("Tickets sold per event"));
    // The event's title is text, never markup.
    assert!(svg.contains("Show &lt;b&gt;&amp;") && !svg.contains("<b>"), "{svg}");
    assert_eq!(
        error_code(get_with(&app, "/api/creators/me/charts/sales.svg", None).await).await.0,
        StatusCode::UNAUTHORIZED
    );

    let path = format!("/api/events/{event_id}/charts/attendance.svg");
    let attendance = get_with(&app, &path, Some(&alice)).await;
    assert_eq!(attendance.status(), StatusCode::OK);
    assert!(attendance.text().await.unwrap().contains("No attendance yet"));
    assert_eq!(error_code(get_with(&app, &path, Some(&bob)).await).await, (StatusCode::FORBIDDEN, "not_host".into()));
    assert_eq!(error_code(get_with(&app, &path, None).await).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        error_code(get_with(&app, "/api/events/999999/charts/attendance.svg", Some(&alice)).await).await,
        (StatusCode::NOT_FOUND, "event_not_found".into())
    );
});
