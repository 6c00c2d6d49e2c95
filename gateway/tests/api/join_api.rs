//! Joining with a wallet: the gateway's challenge, a real signature, the seed's join endpoint, and the
//! WebSocket it hands out — or a signature in the socket's first frame. Both databases.

use crate::common;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::bip32::{DerivationPath, Xpriv, Xpub};
use chains::derive::EvmAccount;
use chains::{Amount, Chain, Currency};
use common::wallets::{EvmWallet, SolWallet};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use ticketing::creators::{AccountName, Tier};
use ticketing::purchases::{PaymentOutcome, PaymentReport, PaymentSettings, Purchases, QuoteRequest};
use ticketing::rates::StaticRates;
use ticketing::testing::RawSql;
use tokio_tungstenite::tungstenite::Message;

const SOL_PLATFORM: &str = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM";

fn purchases(app: &common::TestApp) -> Purchases {
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let master = Xpriv::new_master(bitcoin::Network::Bitcoin, &[42u8; 32]).unwrap();
    let account = master.derive_priv(&secp, &DerivationPath::from_str("m/44'/60'/0'").unwrap()).unwrap();
    let mut settings = PaymentSettings::new("dlux-tickets");
    settings.evm = Some(EvmAccount::parse(&Xpub::from_priv(&secp, &account).to_string()).unwrap());
    settings.sol_account = Some(SOL_PLATFORM.into());
    Purchases::new(app.store.clone(), Arc::new(StaticRates::development()), settings, &[0x11; 32])
}

async fn live_event(app: &common::TestApp) -> i64 {
    app.store.set_tier(&AccountName::parse("alice").unwrap(), Tier::Pro, None, "test").await.unwrap();
    let now = ticketing::now_ms();
    ticketing::testing::SeedEvent::new(now - 120_000)
        .title("Live")
        .price("500", "USD")
        .accepts("ETH,SOL")
        .starts(now - 60_000)
        .ends(now + 3_600_000)
        .sales(now - 120_000, Some(now + 3_600_000))
        .insert(&app.store)
        .await
}

/// Buys a ticket the way a buyer does: a quote, then a confirmed payment reported by a watcher.
async fn buy(app: &common::TestApp, event_id: i64, currency: Currency, wallet: &str) {
    let p = purchases(app);
    let now = ticketing::now_ms();
    let quote = p.create_quote(QuoteRequest { event_id, currency, wallet_address: wallet.into() }, now).await.unwrap();
    let report = PaymentReport {
        chain: quote.chain().unwrap(),
        txid: format!("tx-{}", quote.id),
        output_index: 0,
        quote_id: Some(quote.id.clone()),
        memo: None,
        amount: quote.amount().unwrap(),
        to_address: quote.payment_address.clone(),
        from_address: Some(wallet.into()),
        block_height: Some(10),
        block_hash: Some("0xab".into()),
        confirmations: 64,
        is_final: true,
    };
    assert!(matches!(p.report_payment(report, now).await.unwrap(), PaymentOutcome::TicketIssued { .. }));
}

async fn challenge(app: &common::TestApp, event_id: i64, chain: &str, wallet: &str) -> String {
    let res = app.get(&format!("/api/events/{event_id}/challenge?chain={chain}&wallet={wallet}")).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().await.unwrap()["message"].as_str().unwrap().to_owned()
}

async fn join(app: &common::TestApp, event_id: i64, body: Value) -> reqwest::Response {
    app.client.post(app.url(&format!("/api/events/{event_id}/join"))).json(&body).send().await.unwrap()
}

async fn first_text(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> Result<Value, (u16, String)> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap() {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(Some(f)))) => return Err((u16::from(f.code), f.reason.to_string())),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    }
}

app_test!(evm_wallet_joins_with_a_signed_challenge, |app| async move {
    let event_id = live_event(&app).await;
    let wallet = EvmWallet::new(7);
    buy(&app, event_id, Currency::Eth, &wallet.address()).await;
    let message = challenge(&app, event_id, "eth", &wallet.address()).await;
    let signature = wallet.sign(&message);
    let res = join(
        &app,
        event_id,
        json!({ "wallet_address": wallet.address(), "chain": "eth", "signature": signature, "message": message }),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let granted: Value = res.json().await.unwrap();
    assert_eq!(granted["access_granted"], true);
    assert_eq!(granted["role"], "attendee");
    let url = granted["websocket_url"].as_str().unwrap();
    assert!(url.starts_with("ws://") && url.ends_with(&format!("/event/{event_id}")), "{url}");
    let token = granted["session_token"].as_str().unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}?token={token}")).await.unwrap();
    let welcome = first_text(&mut ws).await.unwrap();
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["identity"], wallet.address().as_str());
    // The same signed challenge cannot be used twice.
    let again = join(
        &app,
        event_id,
        json!({ "wallet_address": wallet.address(), "chain": "eth", "signature": signature, "message": message }),
    )
    .await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(again.json::<Value>().await.unwrap()["error"]["code"], "replayed");
    // A wallet that signs correctly but holds no ticket.
    let stranger = EvmWallet::new(8);
    let message = challenge(&app, event_id, "eth", &stranger.address()).await;
    let res = join(&app, event_id, json!({ "wallet_address": stranger.address(), "chain": "eth", "signature": stranger.sign(&message), "message": message })).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "no_ticket");
    // The seed's message form with its timestamp.
    let at = ticketing::now_ms();
    let seed = format!("Access event {event_id} at {at}");
    let res = join(
        &app,
        event_id,
        json!({ "wallet_address": wallet.address(), "signature": wallet.sign(&seed), "timestamp": at }),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK, "{:?}", res.text().await);
    // A signature by another key is refused.
    let res = join(&app, event_id, json!({ "wallet_address": wallet.address(), "signature": stranger.sign(&format!("Access event {event_id} at {at}")), "timestamp": at })).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
});

app_test!(solana_wallet_authenticates_in_the_first_frame, |app| async move {
    let event_id = live_event(&app).await;
    let wallet = SolWallet::new(3);
    buy(&app, event_id, Currency::Sol, &wallet.address()).await;
    let ws_url = app.url(&format!("/event/{event_id}")).replacen("http://", "ws://", 1);
    let message = challenge(&app, event_id, "sol", &wallet.address()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let auth = json!({ "type": "auth", "chain": "sol", "wallet": wallet.address(), "message": message, "signature": wallet.sign(&message) });
    ws.send(Message::Text(auth.to_string().into())).await.unwrap();
    assert_eq!(first_text(&mut ws).await.unwrap()["type"], "welcome");
    // No ticket: 4403. Bad signature: 4401.
    let other = SolWallet::new(4);
    let message = challenge(&app, event_id, "sol", &other.address()).await;
    let (mut ws2, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let auth = json!({ "type": "auth", "chain": "sol", "wallet": other.address(), "message": message, "signature": other.sign(&message) });
    ws2.send(Message::Text(auth.to_string().into())).await.unwrap();
    assert_eq!(first_text(&mut ws2).await.unwrap_err().0, 4403);
    let message = challenge(&app, event_id, "sol", &wallet.address()).await;
    let (mut ws3, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let auth = json!({ "type": "auth", "chain": "sol", "wallet": wallet.address(), "message": message, "signature": other.sign(&message) });
    ws3.send(Message::Text(auth.to_string().into())).await.unwrap();
    assert_eq!(first_text(&mut ws3).await.unwrap_err().0, 4401);
    let _ = (Chain::Sol, Amount::zero(Currency::Sol));
});

app_test!(join_refusals_for_event_state, |app| async move {
    let event_id = live_event(&app).await;
    let wallet = EvmWallet::new(9);
    buy(&app, event_id, Currency::Eth, &wallet.address()).await;
    // The event ended: 410.
    let now = ticketing::now_ms();
    sqlx::query("UPDATE events SET event_end = $2 WHERE id = $1")
        .bind(event_id)
        .bind(now - 1)
        .execute(app.store.raw_pool())
        .await
        .unwrap();
    let message = challenge(&app, event_id, "eth", &wallet.address()).await;
    let res = join(&app, event_id, json!({ "wallet_address": wallet.address(), "chain": "eth", "signature": wallet.sign(&message), "message": message })).await;
    assert_eq!(res.status(), StatusCode::GONE);
    // Not open yet: 409 with the opening time.
    sqlx::query("UPDATE events SET event_start = $2, event_end = $3 WHERE id = $1")
        .bind(event_id)
        .bind(now + 86_400_000)
        .bind(now + 90_000_000)
        .execute(app.store.raw_pool())
        .await
        .unwrap();
    let message = challenge(&app, event_id, "eth", &wallet.address()).await;
    let res = join(&app, event_id, json!({ "wallet_address": wallet.address(), "chain": "eth", "signature": wallet.sign(&message), "message": message })).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_live");
    assert!(body["error"]["message"].as_str().unwrap().contains("doors open at"));
    let res = join(&app, event_id, json!({ "wallet_address": wallet.address() })).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.client
            .post(app.url("/api/events/abc/join"))
            .json(&json!({ "wallet_address": "x", "signature": "y" }))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert!(app.get("/naf-dlux-adapter.js").await.text().await.unwrap().contains("NAF.adapters.register"));
});

/// The `pairing` events of a waiting page's stream (`GET /api/pairings/{code}/events`), until the server ends it.
async fn pairing_events(app: &common::TestApp, code: &str, secret: &str) -> Vec<Value> {
    let mut response = app.get(&format!("/api/pairings/{code}/events?secret={secret}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    while let Some(bytes) =
        tokio::time::timeout(Duration::from_secs(10), response.chunk()).await.expect("the stream moves").unwrap()
    {
        text.push_str(&String::from_utf8_lossy(&bytes));
    }
    text.split("\n\n")
        .filter(|frame| frame.lines().any(|l| l == "event: pairing"))
        .map(|frame| serde_json::from_str(frame.lines().find_map(|l| l.strip_prefix("data: ")).unwrap()).unwrap())
        .collect()
}

async fn post_json(app: &common::TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    let res = app.client.post(app.url(path)).json(&body).send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

app_test!(a_pairing_carries_one_phone_signature_to_the_page_that_opened_it, |app| async move {
    let event_id = live_event(&app).await;
    let wallet = EvmWallet::new(12);
    buy(&app, event_id, Currency::Eth, &wallet.address()).await;
    let (status, opened) =
        post_json(&app, "/api/pairings", json!({ "purpose": "join", "event_id": event_id, "chain": "eth" })).await;
    assert_eq!(status, StatusCode::CREATED, "{opened}");
    let code = opened["code"].as_str().unwrap().to_owned();
    let secret = opened["secret"].as_str().unwrap().to_owned();
    assert!(opened["link"].as_str().unwrap().ends_with(&format!("/pages/pair.html?code={code}")));
    assert!(!opened["link"].as_str().unwrap().contains(&secret), "the phone's link does not carry the secret");

    // The phone reads what is asked (typed in lower case with a dash, too) and signs the event's challenge.
    let typed = format!("{}-{}", code[..4].to_lowercase(), &code[4..]);
    let shown: Value = app.get(&format!("/api/pairings/{typed}")).await.json().await.unwrap();
    assert_eq!(shown["purpose"], "join");
    assert_eq!(shown["event_id"], event_id);
    assert_eq!(shown["event_title"], "Live");
    // A wrong secret learns nothing: the same 404 as an unknown code.
    let res = app.get(&format!("/api/pairings/{code}/events?secret=not-it")).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "pairing_not_found");
    let message = challenge(&app, event_id, "eth", &wallet.address()).await;
    let signed = json!({ "wallet": wallet.address(), "message": message, "signature": wallet.sign(&message) });
    let (status, body) = post_json(&app, &format!("/api/pairings/{code}/signature"), signed.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Single use: the link again, or a second signature, is refused.
    let (status, body) = post_json(&app, &format!("/api/pairings/{code}/signature"), signed.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str().unwrap()), (StatusCode::GONE, "pairing_used"));
    let res = app.get(&format!("/api/pairings/{code}")).await;
    assert_eq!(res.status(), StatusCode::GONE);

    // The waiting page gets the signature once, and joins with it.
    let events = pairing_events(&app, &code, &secret).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["status"], "pending");
    assert_eq!(events[1]["status"], "signed");
    assert_eq!(events[1]["signature"], signed["signature"]);
    let body = json!({ "wallet_address": events[1]["wallet"], "chain": events[1]["chain"],
        "signature": events[1]["signature"], "message": events[1]["message"] });
    assert_eq!(join(&app, event_id, body).await.status(), StatusCode::OK);
    let again = pairing_events(&app, &code, &secret).await;
    assert_eq!(again.last().unwrap()["status"], "used", "{again:?}");

    // Expired: refused on the phone's side, and the waiting side's stream ends saying so.
    let (_, opened) =
        post_json(&app, "/api/pairings", json!({ "purpose": "join", "event_id": event_id, "chain": "eth" })).await;
    let stale = opened["code"].as_str().unwrap();
    sqlx::query("UPDATE pairings SET expires_at = $1 WHERE code = $2")
        .bind(ticketing::now_ms() - 1)
        .bind(stale)
        .execute(app.store.raw_pool())
        .await
        .unwrap();
    let res = app.get(&format!("/api/pairings/{stale}")).await;
    assert_eq!(res.status(), StatusCode::GONE);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "pairing_expired");
    let (status, body) = post_json(&app, &format!("/api/pairings/{stale}/signature"), signed.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str().unwrap()), (StatusCode::GONE, "pairing_expired"));
    let events = pairing_events(&app, stale, opened["secret"].as_str().unwrap()).await;
    assert_eq!(events.last().unwrap()["status"], "expired");

    // `sign`: the phone must sign exactly the text, as exactly the signer, asked for.
    let ask = json!({ "purpose": "sign", "chain": "hive", "wallet": "alice", "message": "Sign in to dlux" });
    let (status, opened) = post_json(&app, "/api/pairings", ask).await;
    assert_eq!(status, StatusCode::CREATED);
    let path = format!("/api/pairings/{}/signature", opened["code"].as_str().unwrap());
    let (status, body) =
        post_json(&app, &path, json!({ "wallet": "alice", "message": "something else", "signature": "1f00" })).await;
    assert_eq!((status, body["error"]["code"].as_str().unwrap()), (StatusCode::UNPROCESSABLE_ENTITY, "wrong_message"));
    let (status, body) =
        post_json(&app, &path, json!({ "wallet": "mallory", "message": "Sign in to dlux", "signature": "1f00" })).await;
    assert_eq!((status, body["error"]["code"].as_str().unwrap()), (StatusCode::UNPROCESSABLE_ENTITY, "wrong_signer"));

    // Bad requests, each with its code.
    for (body, want) in [
        (json!({ "purpose": "teleport", "chain": "eth" }), (StatusCode::UNPROCESSABLE_ENTITY, "unknown_purpose")),
        (json!({ "purpose": "join", "chain": "eth" }), (StatusCode::UNPROCESSABLE_ENTITY, "missing_field")),
        (
            json!({ "purpose": "join", "event_id": event_id, "chain": "doge" }),
            (StatusCode::UNPROCESSABLE_ENTITY, "unknown_chain"),
        ),
        (
            json!({ "purpose": "sign", "chain": "hive", "wallet": "alice" }),
            (StatusCode::UNPROCESSABLE_ENTITY, "missing_field"),
        ),
        (json!({ "purpose": "join", "event_id": 999_999, "chain": "eth" }), (StatusCode::NOT_FOUND, "event_not_found")),
        (
            json!({ "purpose": "join", "event_id": event_id, "chain": "eth", "secret": "mine" }),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        ),
    ] {
        let (status, got) = post_json(&app, "/api/pairings", body.clone()).await;
        assert_eq!((status, got["error"]["code"].as_str().unwrap_or_default()), want, "{body}");
    }
    assert_eq!(app.get("/api/pairings/nope").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get("/api/pairings/22222222").await.status(), StatusCode::NOT_FOUND);

    // Doors not open yet: a 409 naming the time, as the join endpoint says it, and no pairing is opened.
    let now = ticketing::now_ms();
    sqlx::query("UPDATE events SET event_start = $2, event_end = $3 WHERE id = $1")
        .bind(event_id)
        .bind(now + 86_400_000)
        .bind(now + 90_000_000)
        .execute(app.store.raw_pool())
        .await
        .unwrap();
    let doors: Value = app.get(&format!("/api/events/{event_id}/doors")).await.json().await.unwrap();
    assert_eq!(doors["state"], "not_open");
    let (status, body) =
        post_json(&app, "/api/pairings", json!({ "purpose": "join", "event_id": event_id, "chain": "eth" })).await;
    assert_eq!((status, body["error"]["code"].as_str().unwrap()), (StatusCode::CONFLICT, "not_live"));
    assert!(body["error"]["message"].as_str().unwrap().contains(doors["opens_at"].as_str().unwrap()), "{body} {doors}");
});

/// TURN end to end: the join response's credentials allocate a relay on the gateway's TURN server and carry
/// data to a peer; a ban revokes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_hands_out_working_turn_credentials_and_a_ban_revokes_them() {
    use turn::client::{Client, ClientConfig};
    use util::Conn as _;

    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |s| {
        s.turn.enabled = true;
        s.turn.relay = turn_relay::TurnConfig::loopback("");
        s.turn.relay.turn_urls = vec!["turn:127.0.0.1:3478?transport=udp".into()];
    })
    .await;
    let event_id = live_event(&app).await;
    let wallet = EvmWallet::new(11);
    buy(&app, event_id, Currency::Eth, &wallet.address()).await;
    let message = challenge(&app, event_id, "eth", &wallet.address()).await;
    let granted: Value = join(&app, event_id, json!({ "wallet_address": wallet.address(), "chain": "eth", "signature": wallet.sign(&message), "message": message }))
        .await
        .json()
        .await
        .unwrap();
    let turn = &granted["turn_credentials"];
    let username = turn["username"].as_str().expect("TURN username");
    assert!(
        username
            .split_once(':')
            .is_some_and(|(expiry, session)| expiry.parse::<u64>().is_ok() && session.starts_with('t')),
        "{username}"
    );
    assert_eq!(turn["ttl"], 600);
    assert!(turn["urls"].as_array().unwrap().iter().any(|u| u.as_str().unwrap().starts_with("turn:")));

    let relay = app.state.turn.clone().expect("relay running");
    let server = relay.udp_addr().unwrap().to_string();
    let connect = |password: String| {
        let server = server.clone();
        let username = username.to_owned();
        let realm = relay.config().realm.clone();
        async move {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let client = Client::new(ClientConfig {
                stun_serv_addr: server.clone(),
                turn_serv_addr: server,
                username,
                password,
                realm,
                software: String::new(),
                rto_in_ms: 0,
                conn: Arc::new(socket),
                vnet: None,
            })
            .await
            .unwrap();
            client.listen().await.unwrap();
            client
        }
    };
    // A peer that echoes.
    let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = peer.recv_from(&mut buf).await {
            let _ = peer.send_to(&buf[..n], from).await;
        }
    });
    let client = connect(turn["credential"].as_str().unwrap().to_owned()).await;
    let relayed = client.allocate().await.expect("allocation with the join's credentials");
    relayed.send_to(b"through the gateway's relay", peer_addr).await.unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) =
        tokio::time::timeout(Duration::from_secs(5), relayed.recv_from(&mut buf)).await.expect("echo in time").unwrap();
    assert_eq!(&buf[..n], b"through the gateway's relay");
    // A forged password is refused.
    let forged = connect("AAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()).await;
    assert!(forged.allocate().await.is_err());

    // Seated, then banned: the seat's TURN session is revoked, new allocations are refused.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "{}?token={}",
        granted["websocket_url"].as_str().unwrap(),
        granted["session_token"].as_str().unwrap()
    ))
    .await
    .unwrap();
    let welcome = first_text(&mut ws).await.unwrap();
    let client_id = welcome["client_id"].as_str().unwrap().to_owned();
    let welcome_user = welcome["turn"]["ice_servers"][0]["username"]
        .as_str()
        .unwrap_or_else(|| panic!("welcome carries TURN: {welcome}"));
    assert_eq!(welcome_user.split(':').nth(1), username.split(':').nth(1), "the same seat's session");
    // Renewal over the WebSocket: a fresh credential for the same seat.
    ws.send(Message::Text(json!({ "type": "turn_refresh" }).to_string().into())).await.unwrap();
    let renewed = loop {
        let frame = first_text(&mut ws).await.unwrap();
        if frame["type"] == "turn" {
            break frame;
        }
    };
    let renewed_user = renewed["ice_servers"][0]["username"].as_str().unwrap();
    assert_eq!(renewed_user.split(':').nth(1), username.split(':').nth(1));
    assert!(renewed["expires_at"].as_i64().unwrap() > ticketing::now_ms());
    let res = app
        .admin(reqwest::Method::POST, &format!("/api/events/{event_id}/attendees/{client_id}/ban"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let before = relay.stats().snapshot().auth_failures_unknown_session;
    let mut refused = false;
    for _ in 0..50 {
        let again = connect(turn["credential"].as_str().unwrap().to_owned()).await;
        if again.allocate().await.is_err() && relay.stats().snapshot().auth_failures_unknown_session > before {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "a banned seat's TURN credentials are refused as an unknown (revoked) session");
    assert!(relay.stats().snapshot().revoked_allocations >= 1, "its live allocation was torn down");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("gateway_turn_allocations_total"), "{metrics}");
}

app_test!(a_seed_signature_is_single_use_whatever_evm_chain_it_names, |app| async move {
    let event_id = live_event(&app).await;
    let wallet = EvmWallet::new(21);
    buy(&app, event_id, Currency::Eth, &wallet.address()).await;
    let at = ticketing::now_ms();
    let signature = wallet.sign(&format!("Access event {event_id} at {at}"));
    let body = |chain: &str| json!({ "wallet_address": wallet.address(), "chain": chain, "signature": signature, "timestamp": at });
    let first = join(&app, event_id, body("eth")).await;
    assert_eq!(first.status(), StatusCode::OK, "{:?}", first.text().await);
    // The same EIP-191 signature verifies for every EVM chain label; it is still one use.
    for chain in ["pol", "bnb", "eth"] {
        let again = join(&app, event_id, body(chain)).await;
        assert_eq!(again.status(), StatusCode::UNAUTHORIZED, "{chain}");
        assert_eq!(again.json::<Value>().await.unwrap()["error"]["code"], "replayed", "{chain}");
    }
});

app_test!(ticket_secrets_only_reach_the_wallet_that_signs, |app| async move {
    let event_id = live_event(&app).await;
    let wallet = EvmWallet::new(22);
    buy(&app, event_id, Currency::Eth, &wallet.address()).await;
    // Anyone may list a wallet's tickets, but without the token and the server signature.
    let public: Value =
        app.get(&format!("/api/tickets?wallet={}&chain=eth", wallet.address())).await.json().await.unwrap();
    assert_eq!(public.as_array().unwrap().len(), 1, "{public}");
    assert!(public[0].get("token").is_none() && public[0].get("access_signature").is_none(), "{public}");
    assert_eq!(public[0]["status"], "valid");
    // A stranger's signature gets nothing.
    let stranger = EvmWallet::new(23);
    let message = challenge(&app, event_id, "eth", &wallet.address()).await;
    let res = app.client.post(app.url(&format!("/api/events/{event_id}/ticket")))
        .json(&json!({ "wallet_address": wallet.address(), "chain": "eth", "message": message, "signature": stranger.sign(&message) }))
        .send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // The holder's signature over a fresh challenge gets the full ticket.
    let message = challenge(&app, event_id, "eth", &wallet.address()).await;
    let res = app.client.post(app.url(&format!("/api/events/{event_id}/ticket")))
        .json(&json!({ "wallet_address": wallet.address(), "chain": "eth", "message": message, "signature": wallet.sign(&message) }))
        .send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let full: Value = res.json().await.unwrap();
    assert_eq!(full.as_array().unwrap().len(), 1, "{full}");
    assert!(full[0]["token"].as_str().is_some_and(|t| !t.is_empty()), "{full}");
    assert!(full[0]["access_signature"].as_str().is_some_and(|s| !s.is_empty()), "{full}");
});

app_test!(refused_joins_from_many_addresses_write_a_bounded_audit, |app| async move {
    let event_id = live_event(&app).await;
    // 120 bad joins for one event from 40 source addresses (three each, inside every per-address limit).
    for i in 0..120u8 {
        let client =
            reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 1, 1 + i % 40])).build().unwrap();
        let body = json!({ "wallet_address": format!("0x{:040x}", i), "chain": "eth", "signature": "0x00", "message": "not a challenge" });
        let res = client.post(app.url(&format!("/api/events/{event_id}/join"))).json(&body).send().await.unwrap();
        assert!(res.status().is_client_error(), "{}", res.status());
    }
    let audited: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'access.denied' AND event_id = $1")
            .bind(event_id)
            .fetch_one(app.store.raw_pool())
            .await
            .unwrap();
    assert!(audited > 0 && audited <= 30, "{audited} audit rows for 120 refusals");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let counted: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("gateway_access_denials_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(counted, 120.0, "every refusal is still counted");
});
