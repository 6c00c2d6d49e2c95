//! Prometheus metrics, named `gateway_<noun>_<unit>`, served at `/metrics` in the text exposition format.
//!
//! HTTP requests are counted and timed by route template (never the raw path, so ids do not explode the
//! label space), method and status. Other crates keep plain atomic counters; they are exported here.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JoinLabels {
    /// `http` (the join endpoint) or `socket` (the room WebSocket's door).
    pub via: &'static str,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuoteLabels {
    pub currency: String,
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    /// Join attempts (HTTP join endpoint and the room socket's door), by outcome: `admitted` or the refusal code.
    pub joins: Family<JoinLabels, Counter>,
    /// Purchase requests, by requested currency and outcome: `created` or the error code.
    pub quotes: Family<QuoteLabels, Counter>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_request_duration: Family<RouteLabels, Histogram>,
    pub http_in_flight: Gauge,
    /// WebSocket connections refused at the door, by close code.
    pub ws_rejections: Family<CodeLabels, Counter>,
    /// Refused wallet access proofs, by reason (`gateway_access_denials_total{reason}`).
    pub access_denials: Family<ReasonLabels, Counter>,
    /// Accepted wallet access proofs.
    pub access_verifications: Counter,
}

fn latency_histogram() -> Histogram {
    // 0.1 ms … ~3.3 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("gateway");
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION").into() }).set(1);
        registry.register("build_info", "Build information; the value is always 1", build_info);
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            http_requests.clone(),
        );
        let http_request_duration =
            Family::<RouteLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "http_request_duration",
            "HTTP request latency by route template and method",
            Unit::Seconds,
            http_request_duration.clone(),
        );
        let http_in_flight = Gauge::default();
        registry.register("http_requests_in_flight", "HTTP requests being served", http_in_flight.clone());
        let access_denials = Family::<ReasonLabels, Counter>::default();
        registry.register("access_denials", "Wallet access proofs refused, by reason", access_denials.clone());
        let access_verifications = Counter::default();
        registry.register("access_verifications", "Wallet access proofs accepted", access_verifications.clone());
        let joins = Family::<JoinLabels, Counter>::default();
        registry.register(
            "joins",
            "Join attempts over HTTP and at the room socket, by outcome (admitted, or the refusal)",
            joins.clone(),
        );
        let quotes = Family::<QuoteLabels, Counter>::default();
        registry.register(
            "quotes",
            "Purchase requests, by currency and outcome (created, or the error code)",
            quotes.clone(),
        );
        let ws_rejections = Family::<CodeLabels, Counter>::default();
        registry.register(
            "ws_rejections",
            "WebSocket connections refused at admission, by close code",
            ws_rejections.clone(),
        );
        Arc::new(Metrics {
            joins,
            quotes,
            ws_rejections,
            registry,
            http_requests,
            http_request_duration,
            http_in_flight,
            access_denials,
            access_verifications,
        })
    }

    /// Registers further metrics from other parts of the gateway before the server starts.
    pub fn registry_mut(this: &mut Arc<Metrics>) -> Option<&mut Registry> {
        Arc::get_mut(this).map(|m| &mut m.registry)
    }

    pub fn join(&self, via: &'static str, outcome: &str) {
        self.joins.get_or_create(&JoinLabels { via, outcome: outcome.to_owned() }).inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Axum middleware: counts and times every request by its matched route.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    metrics.http_in_flight.inc();
    let response = next.run(request).await;
    metrics.http_in_flight.dec();
    let status = response.status().as_u16();
    metrics
        .http_request_duration
        .get_or_create(&RouteLabels { route: route.clone(), method: method.clone() })
        .observe(started.elapsed().as_secs_f64());
    metrics.http_requests.get_or_create(&HttpLabels { route, method, status }).inc();
    response
}

/// How old the sales totals in a scrape may be: a scrape re-reads them from the store when older.
const SALES_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn render(State(state): State<crate::state::AppState>) -> impl IntoResponse {
    state.sales.refresh(&state.store, SALES_MAX_AGE).await;
    let metrics = &state.metrics;
    (
        [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        metrics.encode(),
    )
}
