//! What every browser test shares: the repository root, the prerequisites (Debian's Chromium and the node
//! driver's packages, both installed by `./scripts/test`), and running one `browser-tests/*.mjs` driver, whose
//! last stdout line is its JSON result.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Fails with a clear message when the browser or the driver's packages are not installed.
pub fn browser_prerequisites() -> PathBuf {
    let root = repo_root();
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium is not installed at {chromium}: run ./scripts/test (it installs Debian's `chromium`), or set CHROMIUM_PATH"
    );
    assert!(
        root.join("browser-tests/node_modules/playwright-core").exists(),
        "browser-tests/node_modules is missing: run ./scripts/test (it runs `npm ci --prefix browser-tests`)"
    );
    root
}

/// Runs `node browser-tests/<script> '<args>'` and returns the JSON object on its last stdout line, failing the
/// test when the driver reports `ok: false`, prints no JSON or outlives `limit`.
pub async fn run_driver(script: &str, args: &Value, limit: Duration) -> Value {
    let root = browser_prerequisites();
    let child = tokio::process::Command::new("node")
        .arg(root.join("browser-tests").join(script))
        .arg(args.to_string())
        .current_dir(&root)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(limit, child)
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within {limit:?}"))
        .expect("node runs (is nodejs installed?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    let result: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{script} printed no JSON result ({e}); stdout:\n{stdout}\nstderr:\n{stderr}"));
    assert_eq!(result["ok"], true, "{script} failed: {}\nstderr:\n{stderr}", result["error"].as_str().unwrap_or(""));
    eprintln!("{script} stderr:\n{stderr}");
    result
}

/// Whether an entity's reported `[x, y, z]` is within 1 cm of `target`.
pub fn position_close(position: &Value, target: [f64; 3]) -> bool {
    let Some(p) = position.as_array() else { return false };
    p.len() == 3 && p.iter().zip(target).all(|(v, t)| v.as_f64().is_some_and(|v| (v - t).abs() < 0.01))
}
