//! A local JSON-RPC server for watcher tests: answers each call from a handler the test supplies (usually
//! built from recorded, real-shaped responses in `tests/fixtures/`), and records every call it served.
//!
//! It listens on 127.0.0.1 on a free port, on `/` and `/json_rpc`, and stops when dropped.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// Answers one call: `Ok(result)` or `Err(error object)`.
pub type Handler = Arc<dyn Fn(&str, &Value) -> Result<Value, Value> + Send + Sync>;

pub struct ReplayServer {
    pub url: String,
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct AppState {
    handler: Handler,
    calls: Arc<Mutex<Vec<(String, Value)>>>,
}

impl ReplayServer {
    pub async fn start(handler: impl Fn(&str, &Value) -> Result<Value, Value> + Send + Sync + 'static) -> ReplayServer {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let state = AppState { handler: Arc::new(handler), calls: calls.clone() };
        let app = Router::new().route("/", post(serve)).route("/json_rpc", post(serve)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("replay server");
        });
        ReplayServer { url, calls, task }
    }

    /// The calls served so far, as (method, params).
    pub fn calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().unwrap().clone()
    }

    pub fn count(&self, method: &str) -> usize {
        self.calls.lock().unwrap().iter().filter(|(m, _)| m == method).count()
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(State(state): State<AppState>, Json(request): Json<Value>) -> Json<Value> {
    let method = request.get("method").and_then(Value::as_str).unwrap_or("").to_owned();
    let params = request.get("params").cloned().unwrap_or(Value::Null);
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    state.calls.lock().unwrap().push((method.clone(), params.clone()));
    Json(match (state.handler)(&method, &params) {
        Ok(result) => json!({ "jsonrpc": "2.0", "result": result, "id": id }),
        Err(error) => json!({ "jsonrpc": "2.0", "error": error, "id": id }),
    })
}

/// Reads `tests/fixtures/<path>` as JSON, after replacing each `${NAME}` with its value.
pub fn fixture(path: &str, vars: &[(&str, String)]) -> Value {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path);
    let mut text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display()));
    for (name, value) in vars {
        text = text.replace(&format!("${{{name}}}"), value);
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", full.display()))
}

/// A recorded response's `result`.
pub fn result_of(response: Value) -> Value {
    response.get("result").cloned().expect("a recorded response has a result")
}
