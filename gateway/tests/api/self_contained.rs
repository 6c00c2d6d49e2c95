//! The binary alone, copied into an empty directory and started there: it serves every web file from its built-in copy, keeps its
//! data under `./data` with an owner-only development secret, and refuses a generated secret for a public origin.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn empty_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gateway-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The binary copied into `dir` (nothing else there), to run from it.
fn gateway_in(dir: &Path) -> Command {
    let binary = dir.join("gateway");
    if !binary.exists() {
        std::fs::copy(env!("CARGO_BIN_EXE_gateway"), &binary).unwrap();
    }
    let mut command = Command::new(&binary);
    command.current_dir(dir).env_remove("RUST_LOG").env_remove("DATABASE_URL");
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("GATEWAY_")) {
        command.env_remove(key);
    }
    command
}

/// Starts the binary in `dir` with no configuration but a random port; returns it and its `http://` address.
fn start_in(dir: &Path) -> (Gateway, String) {
    let mut child = gateway_in(dir)
        .env("GATEWAY_SERVER__PORT", "0")
        .env("GATEWAY_RATES__SOURCE", "static")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the gateway binary");
    let address = common::listening_address(&mut child, Duration::from_secs(60));
    (Gateway(child), address)
}

fn web_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            web_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_from_an_empty_directory_it_serves_every_page() {
    let dir = empty_dir("empty");
    let (_gateway, base) = start_in(&dir);
    let client = reqwest::Client::new();
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    let mut files = Vec::new();
    web_files(&web, &mut files);
    assert!(files.len() > 10, "{files:?}");
    for file in &files {
        let path = file.strip_prefix(&web).unwrap().to_str().unwrap().to_owned();
        let res = client.get(format!("{base}/{path}")).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
        if path.ends_with(".html") {
            assert_eq!(content_type, "text/html; charset=utf-8", "{path}");
        } else if path.ends_with(".js") {
            assert!(
                content_type.starts_with("text/javascript") || content_type.starts_with("application/javascript"),
                "{path}: {content_type}"
            );
        }
        assert_eq!(res.bytes().await.unwrap(), std::fs::read(file).unwrap(), "{path} is the file in web/");
    }
    for (path, expect) in [("/", "<h1>dlux presence gateway</h1>"), ("/pages/", "marketplace.js")] {
        let res = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(res.text().await.unwrap().contains(expect), "{path}");
    }
    let res = client.get(format!("{base}/pages/nope.html")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let res = client.post(format!("{base}/pages/index.html")).send().await.unwrap();
    assert_eq!(res.status(), 404, "only GET and HEAD read files");
    let res = client.head(format!("{base}/pages/index.html")).send().await.unwrap();
    assert_eq!(res.status(), 200);

    // Its data went to ./data, the development secret readable by its owner only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("data/dev-secret")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    drop(_gateway);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_generated_secret_is_refused_for_a_public_origin() {
    let dir = empty_dir("public");
    let output = gateway_in(&dir)
        .env("GATEWAY_SERVER__PORT", "0")
        .env("GATEWAY_SERVER__PUBLIC_URL", "https://presence.example")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("not a loopback address") && text.contains("GATEWAY_SECRET"), "{text}");
    assert!(!dir.join("data/dev-secret").exists(), "no secret written");
    let _ = std::fs::remove_dir_all(dir);
}
