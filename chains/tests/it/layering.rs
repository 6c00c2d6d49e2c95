//! ARCHITECTURE.md's layering, checked on the resolved dependency graph: the domain crates make no network
//! calls of their own, so none of them may depend (directly or through another crate) on an HTTP client.
//! HTTP clients live in `watchers` and `gateway`.

use std::collections::{HashMap, HashSet};
use std::process::Command;

const DOMAIN_CRATES: [&str; 5] = ["chains", "ticketing", "signaling", "cluster", "media"];
const HTTP_CLIENTS: [&str; 6] = ["reqwest", "hyper", "ureq", "isahc", "surf", "attohttpc"];

#[test]
fn no_domain_crate_depends_on_an_http_client() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = format!("{}/../Cargo.toml", env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--manifest-path", &manifest])
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    let name_of: HashMap<&str, &str> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    // Normal (and build) dependencies only: a dev-dependency may well be an HTTP client.
    let mut deps: HashMap<&str, Vec<&str>> = HashMap::new();
    for node in metadata["resolve"]["nodes"].as_array().unwrap() {
        let id = node["id"].as_str().unwrap();
        let normal =
            node["deps"].as_array().unwrap().iter().filter(|d| {
                d["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null() || k["kind"] == "build")
            });
        deps.insert(id, normal.map(|d| d["pkg"].as_str().unwrap()).collect());
    }
    for krate in DOMAIN_CRATES {
        let root = name_of.iter().find(|(_, name)| **name == krate).map(|(id, _)| *id).expect(krate);
        let mut seen = HashSet::new();
        let mut stack = vec![(root, vec![krate])];
        while let Some((id, path)) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            for dep in deps.get(id).into_iter().flatten() {
                let name = name_of[dep];
                let mut via = path.clone();
                via.push(name);
                assert!(!HTTP_CLIENTS.contains(&name), "{krate} depends on an HTTP client: {}", via.join(" → "));
                stack.push((dep, via));
            }
        }
    }
}
