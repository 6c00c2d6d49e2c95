//! Building and running the application: connect the store, assemble the router, bind, serve, shut down.
//!
//! [`Application::build`] returns before serving so callers (the binary, and tests through `spawn_app`) learn
//! the bound port first. Shutdown is one [`CancellationToken`]: cancelling it stops accepting connections,
//! tells WebSockets to close with 1001, lets in-flight requests finish within the grace period, and then
//! flushes and closes the store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::payments::price_feed::CoinGecko;
use anyhow::Context;
use axum::http::{HeaderName, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use chains::derive::{BtcAccount, EvmAccount};
use ticketing::purchases::{PaymentSettings, Purchases};
use ticketing::rates::{CachedRates, RateSource, StaticRates};
use ticketing::tokens::TokenContracts;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::configuration::{RateSourceKind, Secret, Settings};
use crate::error::ApiError;
use crate::exporters;
use crate::live::attendance::{self, RecorderConfig};
use crate::metrics::{self, Metrics};
use crate::routes;
use crate::state::AppState;
use sha2::{Digest, Sha256};
use turn_relay::{SessionRegistry, TurnRelay};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    server: crate::http::server::Server,
    /// Writes the rooms' persistent entities (`rooms/state.rs`); finishes after shutdown, before the store closes.
    entity_writer: tokio::task::JoinHandle<()>,
    /// Attendance changes measured outside the rooms (the SFU's usage), for the recorder `run_until_stopped` starts.
    measured: attendance::IntakeReceiver,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        settings.validate()?;
        let secret = Secret::resolve(&settings)?;
        if secret.generated {
            tracing::warn!(
                path = %settings.data_dir.join("dev-secret").display(),
                "no `secret` configured: using a generated development secret; set GATEWAY_SECRET in production"
            );
        }
        let store = ticketing::Store::connect(&settings.database.url, settings.database.max_connections)
            .await
            .with_context(|| format!("cannot open the database at {}", redact(&settings.database.url)))?;
        tracing::info!(backend = ?store.backend(), "store ready, migrations applied");

        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address).await.with_context(|| format!("cannot listen on {address}"))?;
        let port = listener.local_addr()?.port();
        let mut metrics = Metrics::new();
        let rates = rate_source(&settings)?;
        let closed = store.close_interrupted_sessions(&settings.server.node_id, ticketing::now_ms()).await?;
        if closed > 0 {
            tracing::warn!(sessions = closed, "closed attendance sessions interrupted by the last stop");
        }
        let turn = match settings.turn.enabled {
            true => {
                let relay = start_turn_relay(&settings, Some(SessionRegistry::new())).await?;
                Some(Arc::new(relay))
            }
            false => None,
        };
        let (ban_requests, mut bans) = tokio::sync::mpsc::unbounded_channel::<BanRequest>();
        let (entity_sink, entity_changes) = crate::rooms::state::channel();
        let cluster = match &settings.cluster {
            Some(config) => Some(crate::cluster_node::ClusterNode::start(
                config,
                &settings.server.node_id,
                &settings.public_url(port),
            )?),
            None => None,
        };
        let (remote_moderation, mut remote_moderations) = tokio::sync::mpsc::unbounded_channel::<RemoteModeration>();
        let mut hub = build_hub(&settings, turn.clone(), ban_requests)
            .resume_issuer(crate::rooms::resume::issuer(secret.bytes().to_vec()))
            .entity_sink(entity_sink);
        if let Some(node) = &cluster {
            // Peers of a room on other nodes: relayed through the broker, moderated through their node, placed
            // in shards by the broker.
            hub = hub.fanout(node.fanout()).placement_authority(node.placement_authority()).remote_moderator(
                move |room: signaling::RoomId,
                      target: &str,
                      action: signaling::Moderation,
                      by: &signaling::PeerInfo| {
                    let _ = remote_moderation.send(RemoteModeration {
                        room,
                        target: target.to_owned(),
                        action,
                        actor: by.identity.to_string(),
                    });
                },
            );
        }
        let hub = hub.build();
        let (media, sfu_events) = crate::media_plane::MediaPlane::start(settings.media.clone())
            .await
            .context("cannot start the SFU ([media])")?;
        let purchases = Purchases::new(store.clone(), rates.clone(), payment_settings(&settings)?, secret.bytes());
        log_unpayable_currencies(&purchases);
        let shutdown = CancellationToken::new();
        let watcher_config = watchers_config(&settings)?;
        let watchers = if watchers_configured(&watcher_config) {
            let supervisor = watchers::spawn_all(watcher_config, purchases.clone(), shutdown.clone());
            Some(Arc::new(supervisor))
        } else {
            None
        };
        let sales = exporters::SalesCollector::default();
        let server = crate::http::server::Server::new(crate::http::server::Limits {
            max_connections: settings.server.max_connections,
            overflow_connections: settings.server.overflow_connections,
            header_read_timeout: Duration::from_secs(settings.server.header_read_timeout_secs.max(1)),
            body_timeout: Duration::from_secs(settings.server.body_timeout_secs.max(1)),
        });
        {
            let registry = Metrics::registry_mut(&mut metrics).expect("metrics are not shared yet");
            registry.register_collector(Box::new(exporters::RoomsCollector(hub.clone())));
            registry.register_collector(Box::new(exporters::ConnectionsCollector(server.gauge())));
            registry.register_collector(Box::new(sales.clone()));
            if let Some(relay) = &turn {
                registry.register_collector(Box::new(exporters::TurnCollector(relay.stats())));
            }
            if let Some(sfu) = media.sfu() {
                registry.register_collector(Box::new(exporters::SfuCollector(sfu.stats().clone())));
            }
            if let Some(supervisor) = &watchers {
                registry.register_collector(Box::new(exporters::WatchersCollector(supervisor.clone())));
            }
            if let Some(node) = &cluster {
                registry.register_collector(Box::new(exporters::ClusterCollector(node.broker.stats().clone())));
            }
        }
        let (feed, _) = tokio::sync::broadcast::channel(4096);
        let hive_keys: Arc<dyn chains::signature::HiveKeySource> =
            Arc::new(watchers::HiveRpcKeySource::new(settings.hive_api_url.clone()));
        let access = crate::auth::access::AccessGuard::new(
            store.clone(),
            hive_keys.clone(),
            metrics.clone(),
            secret.bytes(),
            &settings.public_url(port),
            &settings,
        )?;
        // With several nodes a client's attempts are counted once for all of them.
        let access = match &cluster {
            Some(node) => access.with_shared_limits(&node.broker, &settings.access),
            None => access,
        };
        let geo = crate::geo::Geo::from_settings(&settings.geo)?;
        let state = AppState {
            geo,
            store,
            rates,
            purchases,
            hub,
            media,
            cluster,
            connections: tokio_util::task::TaskTracker::new(),
            sales,
            feed,
            turn,
            watchers,
            hive_keys,
            metrics,
            access: Arc::new(access),
            public_url: settings.public_url(port).into(),
            settings: Arc::new(settings),
            secret,
            shutdown,
        };
        // The SFU's measured usage joins the attendance recorder's queue (started with the server).
        let (attendance_intake, measured) = attendance::intake();
        state.media.spawn(&state.hub, attendance_intake, state.feed.clone(), sfu_events);
        // Hosts' `ban` frames run the same operation as the HTTP ban, off the host's connection task.
        let ban_state = state.clone();
        tokio::spawn(async move {
            while let Some(request) = bans.recv().await {
                if let Err(err) =
                    routes::rooms::ban_occupant(&ban_state, request.room, &request.client_id, &request.actor).await
                {
                    tracing::warn!(event_id = request.room, client_id = %request.client_id, error = %err, "ban from the room socket failed");
                }
            }
        });
        if let Some(node) = &state.cluster {
            node.run(&state);
            let moderation_state = state.clone();
            tokio::spawn(async move {
                while let Some(request) = remote_moderations.recv().await {
                    crate::cluster_node::moderate(
                        &moderation_state,
                        request.room,
                        &request.target,
                        request.action,
                        &request.actor,
                    )
                    .await;
                }
            });
        }
        let router = router(state.clone())?;
        let entity_writer =
            crate::rooms::state::spawn_writer(state.store.clone(), entity_changes, state.shutdown.clone());
        Ok(Application { listener, router, state, server, entity_writer, measured })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Cancel this token to shut the application down gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then drains and closes.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application { listener, router, state, server, entity_writer, measured } = self;
        tracing::info!(address = %listener.local_addr()?, public_url = %state.public_url, "listening");
        let token = state.shutdown.clone();
        spawn_quote_sweeper(state.clone());
        crate::privacy::spawn_retention_sweep(state.clone());
        let recorder = attendance::spawn(
            &state.hub,
            state.store.clone(),
            state.feed.clone(),
            RecorderConfig {
                // In a cluster, the node's incarnation: the survivor that reaps it closes exactly its sessions.
                node_id: state
                    .cluster
                    .as_ref()
                    .map_or_else(|| state.settings.server.node_id.clone(), |n| n.node_id().to_owned()),
                flush_interval: Duration::from_millis(state.settings.rooms.attendance_flush_ms.max(10)),
                max_batch: state.settings.rooms.attendance_max_batch.max(1),
                anonymise: state.settings.rooms.anonymise_attendance,
                geo: state.geo.clone(),
                media: Some(state.media.clone()),
                intake: Some(measured),
            },
        );
        // The webhooks subscribe to the feed before the sales feed can put anything on it.
        crate::live::webhooks::spawn(
            state.store.clone(),
            state.feed.subscribe(),
            state.settings.webhooks.clone(),
            state.shutdown.clone(),
        );
        crate::live::sales_feed::spawn(
            state.store.clone(),
            state.feed.clone(),
            Duration::from_millis(250),
            state.settings.rooms.anonymise_attendance,
            state.shutdown.clone(),
        )
        .await;
        let hub = state.hub.clone();
        let hub_token = state.shutdown.clone();
        // Rooms close with 1001 as soon as shutdown begins; HTTP requests drain meanwhile.
        tokio::spawn(async move {
            hub_token.cancelled().await;
            hub.shutdown();
        });
        let grace = Duration::from_secs(state.settings.server.shutdown_grace_secs);
        let serve = server.serve(listener, router, overflow_router(state.clone()), token);
        // The drain is bounded: after the grace period the remaining connections are dropped.
        let drained = async {
            state.shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            _ = serve => {}
            _ = drained => tracing::warn!(grace_secs = grace.as_secs(), "grace period over, dropping remaining connections"),
        }
        // WebSocket tasks are detached from the HTTP server: wait for them, then write what they reported.
        state.connections.close();
        if tokio::time::timeout(grace, state.connections.wait()).await.is_err() {
            tracing::warn!("some room connections did not close in time");
        }
        recorder.finish().await;
        let _ = entity_writer.await;
        if let Some(turn) = &state.turn {
            turn.shutdown().await;
        }
        state.store.close().await;
        tracing::info!("shut down cleanly");
        Ok(())
    }
}

fn router(state: AppState) -> anyhow::Result<Router> {
    let origins =
        Arc::new(crate::http::origins::OriginPolicy::new(&state.public_url, &state.settings.server.allowed_origins)?);
    let request_timeout = Duration::from_secs(state.settings.server.request_timeout_secs.max(1));
    let router = routes::table()
        .into_router()
        // The web files for any path no route claims (`/` is `index.html`), built in or from `web_dir`.
        .fallback(crate::http::web::fallback(state.settings.web_dir.as_deref()))
        // A request answered too slowly (a stalled upstream, a locked database) is dropped with a 503. Only the
        // time to the response's headers counts, so WebSocket upgrades and SSE streams live on past it.
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, request_timeout))
        .layer(axum::middleware::map_response_with_state(request_timeout, crate::http::policy::timed_out))
        // Browsers on other origins: preflights answered on every route, foreign origins refused (403) at
        // preflight and WebSocket upgrade.
        .layer(origins.cors_layer())
        .layer(axum::middleware::from_fn_with_state(origins, crate::http::origins::refuse_foreign_origins))
        .layer(axum::middleware::from_fn(crate::http::policy::apply))
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
        // Behind a trusted proxy the client is the forwarded one (rate limits, audit, geo).
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(state.settings.server.trusted_proxies.clone()),
            crate::http::client_address::from_trusted_proxies,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::internal("the request could not be processed"))
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let request_id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("http", method = %request.method(), uri = %request.uri().path(), request_id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid));
    Ok(router.with_state(state))
}

/// What connections past `server.max_connections` are served: the probes an operator needs, and a prompt
/// 503 for everything else.
fn overflow_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(metrics::render))
        .fallback(|| async {
            ApiError::unavailable("over_capacity", "the server is at its connection limit; try again shortly")
                .retry_after(2)
        })
        .layer(axum::middleware::map_response(|mut response: axum::response::Response| async move {
            response
                .headers_mut()
                .insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
            response
        }))
        .with_state(state)
}

/// The purchases service over the configured database, for operator commands run outside the server.
pub async fn purchases_for_cli(settings: &Settings) -> anyhow::Result<Purchases> {
    let secret = Secret::resolve(settings)?;
    let store = ticketing::Store::connect(&settings.database.url, 2).await?;
    Ok(Purchases::new(store, rate_source(settings)?, payment_settings(settings)?, secret.bytes()))
}

/// Starts the TURN relay from `[turn.relay]`; its shared secret defaults to one derived from the server secret.
/// With `sessions`, only registered sessions' credentials work (the gateway's own relay); without, any unexpired
/// credential signed with the shared secret does (a relay run apart from the gateway).
pub async fn start_turn_relay(settings: &Settings, sessions: Option<SessionRegistry>) -> anyhow::Result<TurnRelay> {
    let mut config = settings.turn.relay.clone();
    if config.shared_secret.is_empty() {
        let secret = Secret::resolve(settings)?;
        config.shared_secret = hex::encode(Sha256::digest([b"turn-secret:".as_slice(), secret.bytes()].concat()));
    }
    let relay = match sessions {
        Some(sessions) => TurnRelay::start(config, sessions).await,
        None => TurnRelay::start(config, SessionRegistry::open()).await,
    };
    relay.context("cannot start the TURN relay")
}

fn watchers_configured(config: &watchers::WatchersConfig) -> bool {
    !config.evm.is_empty()
        || config.btc.is_some()
        || config.solana.is_some()
        || config.hive.is_some()
        || config.monero.is_some()
}

/// A host's kick, ban or mute of a peer held by another node, on its way to that node.
struct RemoteModeration {
    room: i64,
    target: String,
    action: signaling::Moderation,
    actor: String,
}

/// A host's ban over the room socket, on its way to [`routes::rooms::ban_occupant`].
struct BanRequest {
    room: i64,
    client_id: String,
    actor: String,
}

fn build_hub(
    settings: &Settings,
    turn: Option<Arc<TurnRelay>>,
    bans: tokio::sync::mpsc::UnboundedSender<BanRequest>,
) -> signaling::HubBuilder {
    let builder = signaling::Hub::builder(settings.signaling.clone()).ban_handler(
        move |room: signaling::RoomId, target: &signaling::PeerInfo, by: &signaling::PeerInfo| {
            let _ =
                bans.send(BanRequest { room, client_id: target.client_id.to_string(), actor: by.identity.to_string() });
        },
    );
    let Some(relay) = turn else { return builder };
    // Renewal over the WebSocket (`turn_refresh`): a fresh credential for the same seat's session.
    builder.turn_issuer(move |peer: &signaling::PeerInfo| {
        let session = turn_relay::SessionId::parse(crate::state::turn_session(&peer.seat_key)).ok()?;
        if !relay.sessions().is_active(&session) {
            return None;
        }
        let credentials = relay.issue(&session);
        Some(signaling::TurnGrant {
            ice_servers: vec![signaling::IceServer {
                urls: credentials.urls,
                username: Some(credentials.username),
                credential: Some(credentials.credential),
            }],
            expires_at: ticketing::now_ms() + i64::try_from(credentials.ttl).unwrap_or(0) * 1000,
        })
    })
}

/// Expires quotes past their time every few seconds so their seats return to sale even when nobody asks.
fn spawn_quote_sweeper(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = state.shutdown.cancelled() => break,
                _ = tick.tick() => {
                    match state.purchases.expire_quotes(None, ticketing::now_ms()).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(expired = n, "quotes expired"),
                        Err(err) => tracing::warn!(error = %err, "quote sweep failed"),
                    }
                }
            }
        }
    });
}

/// One line per currency this node would offer (the native coins and the listed tokens) that it cannot be paid
/// in, naming what is missing: an operator sees at start-up what buyers will be refused.
fn log_unpayable_currencies(purchases: &Purchases) {
    for (currency, reason) in crate::payments::payability::unpayable_currencies(purchases) {
        tracing::warn!(%currency, %reason, "currency not payable on this node: quotes in it are refused");
    }
}

pub fn payment_settings(settings: &Settings) -> anyhow::Result<PaymentSettings> {
    let config = &settings.payments;
    let mut payments = PaymentSettings::new(config.hive_account.clone());
    let network = config.btc_network;
    if let Some(key) = &config.btc_xpub {
        payments.btc = Some(BtcAccount::parse(key, network).context("payments.btc_xpub")?);
    }
    payments.btc_network = network;
    if let Some(key) = &config.evm_xpub {
        payments.evm = Some(EvmAccount::parse(key).context("payments.evm_xpub")?);
    }
    if let Some(account) = &config.sol_account {
        chains::address::canonical_address(chains::Chain::Sol, account, network).context("payments.sol_account")?;
        payments.sol_account = Some(account.clone());
    }
    if let Some(url) = &config.xmr_wallet_rpc {
        let wallet = watchers::MoneroWalletRpc::new(url, Duration::from_secs(30));
        payments.xmr = Some(ticketing::purchases::XmrAddresses(Arc::new(wallet)));
    }
    payments.confirmations = confirmation_policy(settings)?;
    payments.quote_ttl_ms = i64::try_from(config.quote_ttl_secs.saturating_mul(1000)).context("quote_ttl_secs")?;
    payments.payout_delay_ms =
        i64::try_from(config.payout_delay_secs.saturating_mul(1000)).context("payout_delay_secs")?;
    payments.watch_window_ms =
        i64::try_from(config.watch_window_secs.saturating_mul(1000)).context("watch_window_secs")?;
    if config.btc_large_quote_sat > 0 {
        anyhow::ensure!(
            config.btc_large_quote_confirmations >= 1,
            "payments.btc_large_quote_confirmations must be at least 1"
        );
        payments
            .large_quote_confirmations
            .insert(chains::Chain::Btc, (u128::from(config.btc_large_quote_sat), config.btc_large_quote_confirmations));
    }
    payments.tokens = token_contracts(settings)?;
    payments.quote_limits = quote_limits(config)?;
    anyhow::ensure!(config.max_address_gap > 0, "payments.max_address_gap must be at least 1");
    payments.address_reuse = ticketing::purchases::derivation::AddressReuse {
        reuse_after_ms: i64::try_from(config.address_reuse_after_secs.saturating_mul(1000))
            .context("address_reuse_after_secs")?,
        max_gap: config.max_address_gap,
    };
    let mut elsewhere = std::collections::BTreeSet::new();
    for chain in &config.watched_elsewhere {
        elsewhere
            .insert(chain.parse::<chains::Chain>().with_context(|| format!("payments.watched_elsewhere: `{chain}`"))?);
    }
    payments.unwatched = crate::payments::payability::unwatched_chains(&watchers_config(settings)?, &elsewhere);
    // Payment URIs (EIP-681) name the chain id the watcher follows: a test network's, when configured.
    for evm in &settings.watchers.evm {
        if let Some(id) = evm.chain_id {
            payments.chain_ids.insert(evm.chain, id);
        }
    }
    Ok(payments)
}

/// The open-quote limits and the unpaid-hold share, as the ticketing crate counts them (0: no limit; the share
/// in thousandths, so the seat arithmetic stays in integers).
fn quote_limits(config: &crate::configuration::PaymentConfig) -> anyhow::Result<ticketing::purchases::QuoteLimits> {
    let share = config.max_unpaid_hold_share;
    anyhow::ensure!(share > 0.0 && share <= 1.0, "payments.max_unpaid_hold_share must be more than 0 and at most 1");
    let limit = |n: u32| (n > 0).then_some(n);
    Ok(ticketing::purchases::QuoteLimits {
        per_client: limit(config.max_open_quotes_per_client),
        per_wallet: limit(config.max_open_quotes_per_wallet),
        // In (0, 1000]: checked above.
        hold_share_permille: ((share * 1000.0).round() as u32).max(1),
    })
}

/// `payments.tokens`, checked: each key a token code, each value a contract or mint valid on its network.
pub fn token_contracts(settings: &Settings) -> anyhow::Result<TokenContracts> {
    let mut tokens = TokenContracts::new();
    for (code, contract) in &settings.payments.tokens {
        let currency: chains::Currency = code.parse().with_context(|| format!("payments.tokens: `{code}`"))?;
        tokens.insert(currency, contract).with_context(|| format!("payments.tokens.{code}"))?;
    }
    Ok(tokens)
}

/// The watchers' configuration with `payments.tokens` added, so a token contract is configured once: each
/// listed ERC-20 becomes a credited token of its network's EVM watcher, and USDC.SOL the Solana watcher's mint.
/// A watcher section that names a different contract for the same token is a configuration error.
pub fn watchers_config(settings: &Settings) -> anyhow::Result<watchers::WatchersConfig> {
    let mut config = settings.watchers.clone();
    align_confirmations(&mut config, &confirmation_policy(settings)?)?;
    for (currency, contract) in token_contracts(settings)?.iter() {
        let chain = currency.chain().expect("tokens travel on a chain");
        if chain == chains::Chain::Sol {
            if let Some(solana) = &mut config.solana {
                match &solana.usdc_mint {
                    Some(mint) if mint != contract => {
                        anyhow::bail!("watchers.solana.usdc_mint {mint} is not payments.tokens.{currency} {contract}")
                    }
                    _ => solana.usdc_mint = Some(contract.to_owned()),
                }
            }
            continue;
        }
        for evm in config.evm.iter_mut().filter(|e| e.chain == chain) {
            let same = |t: &watchers::TokenConfig| t.contract.eq_ignore_ascii_case(contract);
            if let Some(other) = evm.tokens.iter().find(|t| t.currency == Some(currency) && !same(t)) {
                anyhow::bail!(
                    "watchers.evm ({chain}) credits {} as {currency}, but payments.tokens.{currency} is {contract}",
                    other.contract
                );
            }
            match evm.tokens.iter_mut().find(|t| same(t)) {
                Some(token) => match token.currency {
                    None => token.currency = Some(currency),
                    Some(c) if c == currency => {}
                    Some(c) => {
                        anyhow::bail!("watchers.evm ({chain}) token {contract} is {c}, payments.tokens says {currency}")
                    }
                },
                None => evm.tokens.push(watchers::TokenConfig {
                    symbol: currency.stablecoin().expect("a token").symbol().to_owned(),
                    contract: contract.to_owned(),
                    decimals: currency.decimals(),
                    currency: Some(currency),
                }),
            }
        }
    }
    Ok(config)
}

/// Confirmations per chain: the built-in defaults, over which `payments.confirmations`. The one policy: quotes
/// record it as `confirmations_required`, and every watcher credits by it (see [`align_confirmations`]).
pub fn confirmation_policy(settings: &Settings) -> anyhow::Result<std::collections::HashMap<chains::Chain, i64>> {
    let mut policy = ticketing::purchases::default_confirmations();
    for (chain, n) in &settings.payments.confirmations {
        let chain: chains::Chain = chain.parse().context("payments.confirmations")?;
        anyhow::ensure!(*n >= 1, "payments.confirmations.{chain} must be at least 1");
        policy.insert(chain, *n);
    }
    Ok(policy)
}

/// Gives the BTC and EVM watchers the confirmations of `policy` (Monero and Solana read ticketing's; Hive credits
/// irreversible blocks). A watcher section that names a different count is refused rather than silently
/// overridden: `payments.confirmations` is the one place to set it.
fn align_confirmations(
    config: &mut watchers::WatchersConfig,
    policy: &std::collections::HashMap<chains::Chain, i64>,
) -> anyhow::Result<()> {
    let required = |chain: chains::Chain| -> anyhow::Result<u32> {
        let n = policy.get(&chain).copied().unwrap_or(1);
        u32::try_from(n).with_context(|| format!("payments.confirmations.{chain} is too large"))
    };
    let disagree = |section: &str, chain: chains::Chain, theirs: u32, ours: u32| {
        anyhow::anyhow!(
            "{section} confirmations = {theirs} disagrees with payments.confirmations.{chain} = {ours}: set \
             payments.confirmations.{chain} only (quotes and the watcher both read it)"
        )
    };
    if let Some(btc) = &mut config.btc {
        let ours = required(chains::Chain::Btc)?;
        // A section without the key carries the watcher's default: only a different explicit value disagrees.
        let default = watchers::BtcWatcherConfig::new("").confirmations;
        if btc.confirmations != ours && btc.confirmations != default {
            return Err(disagree("[watchers.btc]", chains::Chain::Btc, btc.confirmations, ours));
        }
        btc.confirmations = ours;
    }
    for evm in &mut config.evm {
        let ours = required(evm.chain)?;
        match evm.confirmations {
            Some(theirs) if theirs != ours => {
                return Err(disagree(&format!("[[watchers.evm]] chain = \"{}\"", evm.chain), evm.chain, theirs, ours))
            }
            _ => evm.confirmations = Some(ours),
        }
    }
    Ok(())
}

fn rate_source(settings: &Settings) -> anyhow::Result<Arc<dyn RateSource>> {
    let upstream: Arc<dyn RateSource> = match settings.rates.source {
        RateSourceKind::Coingecko => Arc::new(CoinGecko::new(settings.rates.url.clone())),
        RateSourceKind::Static => {
            let mut table = StaticRates::development();
            for (symbol, rate) in &settings.rates.table {
                let currency: chains::Currency = symbol.parse()?;
                let rate: rust_decimal::Decimal =
                    rate.parse().with_context(|| format!("rate for {symbol} is not a decimal"))?;
                table.0.insert(currency, rate);
            }
            Arc::new(table)
        }
    };
    Ok(Arc::new(CachedRates::new(upstream, Duration::from_secs(settings.rates.cache_secs))))
}

/// Hides a password in a database URL for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{}:***{}", &url[..scheme], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Resolves when SIGTERM or Ctrl-C arrives.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_tokens(tokens: &[(&str, &str)], watchers: &str) -> Settings {
        let mut settings = Settings::default();
        settings.payments.tokens = tokens.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        settings.watchers = toml_watchers(watchers);
        settings
    }

    #[test]
    fn quotes_and_watchers_read_one_confirmation_policy() {
        let mut settings = Settings::default();
        settings.payments.confirmations = [("btc".to_string(), 4), ("pol".to_string(), 200)].into_iter().collect();
        settings.watchers = toml_watchers(
            "[btc]\nesplora_url = \"http://127.0.0.1:1\"\n[[evm]]\nchain = \"pol\"\nrpc_url = \"http://127.0.0.1:1\"\n\
             [[evm]]\nchain = \"eth\"\nrpc_url = \"http://127.0.0.1:1\"\n",
        );
        let payments = payment_settings(&settings).unwrap();
        let config = watchers_config(&settings).unwrap();
        assert_eq!(payments.confirmations_required(chains::Chain::Btc), 4);
        assert_eq!(config.btc.as_ref().unwrap().confirmations, 4);
        let evm = |chain| config.evm.iter().find(|e| e.chain == chain).unwrap().confirmations;
        assert_eq!((payments.confirmations_required(chains::Chain::Pol), evm(chains::Chain::Pol)), (200, Some(200)));
        // Unset: the default, the same on both sides (Ethereum's finalized-tag fallback included).
        assert_eq!((payments.confirmations_required(chains::Chain::Eth), evm(chains::Chain::Eth)), (12, Some(12)));
    }

    #[test]
    fn a_watcher_section_that_disagrees_with_the_policy_is_refused() {
        let mut settings = Settings {
            watchers: toml_watchers("[btc]\nesplora_url = \"http://127.0.0.1:1\"\nconfirmations = 3\n"),
            ..Settings::default()
        };
        let err = watchers_config(&settings).unwrap_err().to_string();
        assert!(err.contains("payments.confirmations.btc = 2"), "{err}");
        settings.watchers =
            toml_watchers("[[evm]]\nchain = \"bnb\"\nrpc_url = \"http://127.0.0.1:1\"\nconfirmations = 5\n");
        let err = watchers_config(&settings).unwrap_err().to_string();
        assert!(err.contains("payments.confirmations.bnb = 15"), "{err}");
        // Saying the same thing twice is not a disagreement.
        settings.payments.confirmations = [("bnb".to_string(), 5)].into_iter().collect();
        assert_eq!(watchers_config(&settings).unwrap().evm[0].confirmations, Some(5));
    }

    fn toml_watchers(text: &str) -> watchers::WatchersConfig {
        use figment::providers::Format;
        figment::Figment::from(figment::providers::Toml::string(text)).extract().unwrap()
    }

    const USDC_ETH: &str = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48";
    const USDT_ETH: &str = "0xdac17f958d2ee523a2206206994597c13d831ec7";
    const USDC_SOL: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";

    #[test]
    fn payment_tokens_reach_their_networks_watchers() {
        let settings = with_tokens(
            &[("USDC.ETH", "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"), ("usdt-eth", USDT_ETH), ("usdc_sol", USDC_SOL)],
            "[[evm]]\nchain = \"eth\"\nrpc_url = \"http://eth\"\n\
             [[evm.tokens]]\nsymbol = \"USDT\"\ncontract = \"0xDAC17F958D2ee523a2206206994597C13D831ec7\"\ndecimals = 6\n\
             [[evm]]\nchain = \"pol\"\nrpc_url = \"http://pol\"\n\
             [solana]\nrpc_url = \"http://sol\"\n",
        );
        let config = watchers_config(&settings).unwrap();
        let eth = &config.evm[0].tokens;
        assert_eq!(eth.len(), 2, "{eth:?}");
        assert_eq!(
            (eth[0].contract.to_ascii_lowercase(), eth[0].currency),
            (USDT_ETH.to_owned(), Some(chains::Currency::UsdtEth)),
            "listed only: now credited"
        );
        assert_eq!(
            (eth[1].contract.as_str(), eth[1].currency, eth[1].decimals),
            (USDC_ETH, Some(chains::Currency::UsdcEth), 6)
        );
        assert!(config.evm[1].tokens.is_empty(), "no Polygon token configured");
        assert_eq!(config.solana.unwrap().usdc_mint.as_deref(), Some(USDC_SOL));
        assert_eq!(token_contracts(&settings).unwrap().contract(chains::Currency::UsdcEth), Some(USDC_ETH));
    }

    #[test]
    fn contradicting_token_configuration_is_refused() {
        let solana = with_tokens(
            &[("USDC.SOL", USDC_SOL)],
            "[solana]\nrpc_url = \"x\"\nusdc_mint = \"4vrde3cq8yD6cB9qJV7jRXocpa1KDNd9MJPMX3R891xV\"\n",
        );
        assert!(watchers_config(&solana).is_err());
        let evm = with_tokens(
            &[("USDC.ETH", USDC_ETH)],
            &format!("[[evm]]\nchain = \"eth\"\nrpc_url = \"x\"\n[[evm.tokens]]\nsymbol = \"USDC\"\ncontract = \"{USDT_ETH}\"\ndecimals = 6\ncurrency = \"USDC.ETH\"\n"),
        );
        assert!(watchers_config(&evm).is_err());
        for (code, contract) in [("USDC", USDC_ETH), ("ETH", USDC_ETH), ("USDC.SOL", USDC_ETH), ("USDT.POL", "0x12")] {
            assert!(token_contracts(&with_tokens(&[(code, contract)], "")).is_err(), "{code} = {contract}");
        }
    }

    #[test]
    fn payment_uris_name_the_watched_chain_id() {
        let settings = with_tokens(&[], "[[evm]]\nchain = \"eth\"\nrpc_url = \"http://anvil\"\nchain_id = 31337\n");
        let payments = payment_settings(&settings).unwrap();
        assert_eq!(payments.chain_ids.get(&chains::Chain::Eth), Some(&31337));
        assert_eq!(
            payments.chain_ids.get(&chains::Chain::Pol),
            Some(&137),
            "unconfigured chains keep their mainnet id"
        );
    }

    /// One parser per network, straight from the configuration: the network named there is the one buyers'
    /// BTC wallets are checked on (they were once always mainnet) and the one sign-in accepts.
    #[test]
    fn networks_come_from_the_configuration_file() {
        let dir = std::env::temp_dir().join(format!("gateway-networks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gateway.toml");
        std::fs::write(&file, "[payments]\nbtc_network = \"regtest\"\n[access]\nxmr_network = \"stagenet\"\n").unwrap();
        let settings = Settings::load(Some(&file)).unwrap();
        assert_eq!(settings.access.xmr_network, chains::signature::MoneroNetwork::Stagenet);
        let payments = payment_settings(&settings).unwrap();
        assert_eq!(payments.btc_network, chains::signature::BtcNetwork::Regtest);
        let vpub = "vpub5YvMuJNjRSYon44z9QmCfdf8SqJRVNvz6m55Qy5iVjZQxDfUgtiQjnc7CC1fAbED2tAGCZRERUfvtn2DstZGU6HMns6dXXH2wujSc2wfi2x";
        let regtest_wallet = chains::derive::BtcAccount::parse(vpub, payments.btc_network).unwrap().address(3).unwrap();
        assert!(chains::address::canonical_address(chains::Chain::Btc, &regtest_wallet, payments.btc_network).is_ok());
        std::fs::write(&file, "[payments]\nbtc_network = \"bitcoin\"\n").unwrap();
        assert_eq!(
            payment_settings(&Settings::load(Some(&file)).unwrap()).unwrap().btc_network,
            chains::signature::BtcNetwork::Mainnet
        );
        std::fs::write(&file, "[payments]\nbtc_network = \"moon\"\n").unwrap();
        assert!(Settings::load(Some(&file)).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(super::redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact("sqlite://data/x.db"), "sqlite://data/x.db");
    }

    #[test]
    fn quote_limits_from_the_configuration() {
        let mut config = crate::configuration::Settings::default().payments;
        let limits = super::quote_limits(&config).unwrap();
        assert_eq!((limits.per_client, limits.per_wallet, limits.hold_share_permille), (Some(4), Some(4), 500));
        assert_eq!((limits.hold_cap(100, 0), limits.hold_cap(100, 99), limits.hold_cap(100, 100)), (50, 1, 1));
        config.max_open_quotes_per_client = 0;
        config.max_unpaid_hold_share = 1.0;
        let limits = super::quote_limits(&config).unwrap();
        assert_eq!((limits.per_client, limits.hold_cap(100, 10)), (None, 90));
        for share in [0.0, -0.5, 1.5, f64::NAN] {
            config.max_unpaid_hold_share = share;
            assert!(super::quote_limits(&config).is_err(), "{share}");
        }
    }
}
