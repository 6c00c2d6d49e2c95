//! The HTTP API, one module per resource.

pub mod access;
pub mod admin;
pub mod admin_payouts;
pub mod analytics;
pub mod certificates;
pub mod charts;
pub mod creators;
pub mod events;
pub mod health;
pub mod pairings;
pub mod payout_addresses;
pub mod privacy;
pub mod purchases;
pub mod qr;
pub mod quote_events;
pub mod rooms;
pub mod rsvp;
pub mod sdk;
pub mod stage;
pub mod webhooks;

use axum::handler::Handler;
use axum::routing::{self, MethodRouter};
use axum::Router;

use crate::state::AppState;

/// The routes, recorded as they are added: the router is built from this table, and a test reads the same table
/// to check that `/api/openapi.json` documents every route (and nothing else).
#[derive(Default)]
pub struct Table {
    router: Router<AppState>,
    entries: Vec<(&'static str, &'static str)>,
}

macro_rules! method {
    ($name:ident, $verb:literal) => {
        pub fn $name<H, T>(self, path: &'static str, handler: H) -> Self
        where
            H: Handler<T, AppState>,
            T: 'static,
        {
            self.add(path, $verb, routing::$name(handler))
        }
    };
}

impl Table {
    pub fn new() -> Self {
        Self::default()
    }

    fn add(mut self, path: &'static str, method: &'static str, method_router: MethodRouter<AppState>) -> Self {
        self.entries.push((path, method));
        self.router = self.router.route(path, method_router);
        self
    }

    method!(get, "get");
    method!(post, "post");
    method!(put, "put");
    method!(patch, "patch");
    method!(delete, "delete");

    pub fn merge(mut self, other: Table) -> Self {
        self.entries.extend(other.entries);
        self.router = self.router.merge(other.router);
        self
    }

    /// `(path, method)` of every route, the method in lower case.
    pub fn entries(&self) -> &[(&'static str, &'static str)] {
        &self.entries
    }

    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}

/// Every route of the public listener (the web files are the fallback, not routes).
pub fn table() -> Table {
    Table::new()
        .get("/healthz", health::healthz)
        .get("/readyz", health::readyz)
        .get("/metrics", crate::metrics::render)
        .put("/api/admin/creators/{account}/tier", admin::set_tier)
        .merge(purchases::router())
        .merge(rsvp::router())
        .merge(quote_events::router())
        .merge(qr::router())
        .merge(charts::router())
        .merge(sdk::router())
        .merge(rooms::router())
        .merge(stage::router())
        .merge(events::router())
        .merge(access::router())
        .merge(pairings::router())
        .merge(analytics::router())
        .merge(certificates::router())
        .merge(webhooks::router())
        .merge(privacy::router())
        .merge(payout_addresses::router())
        .merge(admin_payouts::router())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Routes that are not part of the JSON API, each with why it is left out of `/api/openapi.json`.
    const EXCLUDED: &[(&str, &str, &str)] = &[
        ("/healthz", "get", "liveness probe for the orchestrator, not API"),
        ("/readyz", "get", "readiness probe for the orchestrator, not API"),
        ("/metrics", "get", "Prometheus exposition format, scraped by the monitoring"),
        ("/event/{id}", "get", "the room WebSocket upgrade; its frames are docs/PROTOCOL.md"),
        ("/naf-dlux-adapter.js", "get", "a static JavaScript asset (the NAF adapter)"),
        ("/sdk/events.js", "get", "a static JavaScript asset (the events SDK)"),
        ("/sdk/events.d.ts", "get", "a static TypeScript declaration asset"),
        ("/api/openapi.json", "get", "the document itself"),
    ];

    #[test]
    fn every_route_is_documented_and_every_documented_route_exists() {
        let table = super::table();
        let routes: BTreeSet<(String, String)> =
            table.entries().iter().map(|(p, m)| (p.to_string(), m.to_string())).collect();
        assert_eq!(routes.len(), table.entries().len(), "a (path, method) is routed twice");
        let excluded: BTreeSet<(String, String)> =
            EXCLUDED.iter().map(|(p, m, _)| (p.to_string(), m.to_string())).collect();
        for route in &excluded {
            assert!(routes.contains(route), "excluded but not routed: {route:?}");
        }

        let doc = serde_json::to_value(super::events::document()).unwrap();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().unwrap().keys() {
                if ["get", "post", "put", "patch", "delete", "head", "options", "trace"].contains(&method.as_str()) {
                    documented.insert((path.clone(), method.clone()));
                }
            }
        }

        let undocumented: Vec<_> = routes.difference(&documented).filter(|r| !excluded.contains(*r)).collect();
        let absent: Vec<_> = documented.difference(&routes).collect();
        let both: Vec<_> = documented.intersection(&excluded).collect();
        assert!(undocumented.is_empty(), "routes missing from /api/openapi.json: {undocumented:#?}");
        assert!(absent.is_empty(), "documented but not routed: {absent:#?}");
        assert!(both.is_empty(), "excluded yet documented: {both:#?}");
    }
}
