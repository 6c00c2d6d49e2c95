//! `gateway verify-signature`, run as the real binary against the chains crate's signature vectors: every valid
//! vector prints `valid` and exits 0, every invalid one prints `invalid: <its reason>` and exits 1, and unusable
//! arguments exit 2.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{json, Value};

fn gateway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(args)
        // No configuration is read, whatever the environment says.
        .env("GATEWAY_CONFIG", "/nonexistent/gateway.toml")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .expect("run the gateway binary")
}

fn vectors(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../chains/tests/vectors").join(format!("{name}.json"));
    serde_json::from_slice(&std::fs::read(&path).expect("vector file")).expect("vector JSON")
}

fn temp_file(bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("verify-cli-{}-{}", std::process::id(), rand::random::<u64>()));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Runs every case of a vector file through the binary; returns how many ran.
fn check_cases(file: &str, chain: &str, extra: impl Fn(&Value) -> Vec<String>) -> usize {
    let doc = vectors(file);
    let cases = doc["cases"].as_array().unwrap();
    let mut failures = Vec::new();
    for case in cases {
        let mut args: Vec<String> = ["verify-signature", "--chain", chain, "--address"].map(String::from).to_vec();
        args.push(case["address"].as_str().unwrap().to_owned());
        args.push("--signature".into());
        args.push(case["signature"].as_str().unwrap().to_owned());
        let file = match (case.get("message_hex"), case.get("message")) {
            (Some(hex_text), _) => {
                let path = temp_file(&hex::decode(hex_text.as_str().unwrap()).unwrap());
                args.extend(["--message-file".to_owned(), path.display().to_string()]);
                Some(path)
            }
            (None, Some(text)) => {
                args.extend(["--message".to_owned(), text.as_str().unwrap().to_owned()]);
                None
            }
            (None, None) => panic!("case without a message"),
        };
        args.extend(extra(case));
        let out = gateway(&args.iter().map(String::as_str).collect::<Vec<_>>());
        if let Some(path) = file {
            let _ = std::fs::remove_file(path);
        }
        let expect = case["expect"].as_str().unwrap();
        let (code, line) = if expect == "ok" { (0, "valid".to_owned()) } else { (1, format!("invalid: {expect}")) };
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.code() != Some(code) || stdout.trim() != line {
            failures.push(format!(
                "{}: expected {code} `{line}`, got {:?} `{}` ({})",
                case["name"],
                out.status.code(),
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    cases.len()
}

#[test]
fn evm_vectors() {
    assert!(check_cases("evm", "eth", |_| vec![]) > 0);
}

#[test]
fn evm_chain_names_are_interchangeable() {
    let doc = vectors("evm");
    let case =
        doc["cases"].as_array().unwrap().iter().find(|c| c["expect"] == "ok" && c.get("sign_in").is_none()).unwrap();
    for chain in ["eth", "matic", "pol", "bnb"] {
        let out = gateway(&[
            "verify-signature",
            "--chain",
            chain,
            "--address",
            case["address"].as_str().unwrap(),
            "--message",
            case["message"].as_str().unwrap(),
            "--signature",
            case["signature"].as_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{chain}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "valid");
    }
}

#[test]
fn btc_vectors() {
    assert!(
        check_cases("btc", "btc", |case| vec!["--btc-network".into(), case["network"].as_str().unwrap().into()]) > 0
    );
}

#[test]
fn sol_vectors_including_binary_messages_from_a_file() {
    assert!(check_cases("sol", "sol", |_| vec![]) > 0);
}

#[test]
fn xmr_vectors() {
    assert!(
        check_cases("xmr", "xmr", |case| vec!["--xmr-network".into(), case["network"].as_str().unwrap().into()]) > 0
    );
}

/// A local, fake Hive API node that knows the vector file's accounts; returns its URL.
async fn spawn_hive_api() -> String {
    let accounts = vectors("hive")["accounts"].clone();
    let api = axum::Router::new().route(
        "/",
        axum::routing::post(move |axum::Json(request): axum::Json<Value>| {
            let accounts = accounts.clone();
            async move {
                let name = request["params"][0][0].as_str().unwrap_or_default().to_owned();
                let auth = |keys: &Value| json!({ "key_auths": keys.as_array().unwrap().iter().map(|k| json!([k, 1])).collect::<Vec<_>>() });
                let result = match accounts.get(&name) {
                    Some(a) => json!([{ "name": name, "active": auth(&a["active"]), "posting": auth(&a["posting"]) }]),
                    None => json!([]),
                };
                axum::Json(json!({ "jsonrpc": "2.0", "id": 1, "result": result }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, api).await });
    url
}

/// Hive public keys are checked offline; account names ask a (here: local, fake) Hive API node for their keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hive_vectors_with_keys_and_accounts() {
    let url = spawn_hive_api().await;
    let ran =
        tokio::task::spawn_blocking(move || check_cases("hive", "hive", |_| vec!["--hive-api".into(), url.clone()]))
            .await
            .unwrap();
    assert!(ran > 0);
}

/// Without `--hive-api`, account names are looked up on the configuration's `hive_api_url`: from `--config`, or
/// `GATEWAY_HIVE_API_URL`; a node that does not answer is named in the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hive_account_lookups_follow_the_configuration() {
    let url = spawn_hive_api().await;
    let doc = vectors("hive");
    let case = doc["cases"].as_array().unwrap().iter().find(|c| c["name"] == "account/posting/msg0").unwrap().clone();
    let config = temp_file(format!("hive_api_url = \"{url}\"\n").as_bytes());
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/rpc?key=private", listener.local_addr().unwrap())
    };
    let run = move |config_arg: Option<String>, env: Vec<(&'static str, String)>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
        command.env_remove("GATEWAY_CONFIG").env_remove("GATEWAY_HIVE_API_URL").envs(env);
        if let Some(path) = config_arg {
            command.args(["--config", &path]);
        }
        command.args(["verify-signature", "--chain", "hive", "--address", case["address"].as_str().unwrap()]);
        command.args([
            "--message",
            case["message"].as_str().unwrap(),
            "--signature",
            case["signature"].as_str().unwrap(),
        ]);
        command.output().unwrap()
    };
    let (config_path, dead_url) = (config.display().to_string(), dead.clone());
    let (from_file, from_env, from_dead) = tokio::task::spawn_blocking(move || {
        (
            run(Some(config_path), vec![]),
            run(None, vec![("GATEWAY_HIVE_API_URL", url)]),
            run(None, vec![("GATEWAY_HIVE_API_URL", dead_url)]),
        )
    })
    .await
    .unwrap();
    for (out, how) in [(&from_file, "--config"), (&from_env, "GATEWAY_HIVE_API_URL")] {
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "valid",
            "{how}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "{how}");
    }
    assert_eq!(from_dead.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&from_dead.stdout).trim(), "invalid: key_source_unavailable");
    let stderr = String::from_utf8_lossy(&from_dead.stderr);
    let origin = dead.trim_end_matches("/rpc?key=private");
    assert!(stderr.contains(origin) && !stderr.contains("key=private"), "names the node, not its query: {stderr}");
    let _ = std::fs::remove_file(config);
}

#[test]
fn unusable_arguments_exit_2() {
    let evm = vectors("evm");
    let case = &evm["cases"][0];
    let (address, message, signature) =
        (case["address"].as_str().unwrap(), case["message"].as_str().unwrap(), case["signature"].as_str().unwrap());
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "verify-signature",
            "--chain",
            "doge",
            "--address",
            address,
            "--message",
            message,
            "--signature",
            signature,
        ],
        vec![
            "verify-signature",
            "--chain",
            "usd",
            "--address",
            address,
            "--message",
            message,
            "--signature",
            signature,
        ],
        vec!["verify-signature", "--chain", "eth", "--address", address, "--message", message],
        vec!["verify-signature", "--chain", "eth", "--address", address, "--signature", signature],
        vec!["verify-signature", "--chain", "eth", "--message", message, "--signature", signature],
        vec![
            "verify-signature",
            "--chain",
            "eth",
            "--address",
            address,
            "--message",
            message,
            "--message-file",
            "/etc/hostname",
            "--signature",
            signature,
        ],
        vec![
            "verify-signature",
            "--chain",
            "btc",
            "--btc-network",
            "moonnet",
            "--address",
            address,
            "--message",
            message,
            "--signature",
            signature,
        ],
        vec![
            "verify-signature",
            "--chain",
            "xmr",
            "--xmr-network",
            "moonnet",
            "--address",
            address,
            "--message",
            message,
            "--signature",
            signature,
        ],
        vec![
            "verify-signature",
            "--chain",
            "eth",
            "--address",
            address,
            "--message-file",
            "/nonexistent/message",
            "--signature",
            signature,
        ],
        vec![
            "verify-signature",
            "--chain",
            "eth",
            "--address",
            address,
            "--message",
            message,
            "--signature",
            signature,
            "--bogus",
        ],
    ];
    for args in cases {
        let out = gateway(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.is_empty() || !String::from_utf8_lossy(&out.stdout).contains("valid"), "{args:?}");
    }
}

#[test]
fn valid_and_altered_from_a_message_file() {
    let evm = vectors("evm");
    let case = &evm["cases"][0];
    assert_eq!(case["expect"], "ok");
    let run = |message: &[u8]| {
        let path = temp_file(message);
        let out = gateway(&[
            "verify-signature",
            "--chain",
            "eth",
            "--address",
            case["address"].as_str().unwrap(),
            "--message-file",
            path.to_str().unwrap(),
            "--signature",
            case["signature"].as_str().unwrap(),
        ]);
        let _ = std::fs::remove_file(path);
        out
    };
    let message = case["message"].as_str().unwrap().as_bytes();
    let good = run(message);
    assert_eq!((good.status.code(), String::from_utf8_lossy(&good.stdout).trim()), (Some(0), "valid"));
    // One trailing newline is a different message.
    let altered = run(&[message, b"\n"].concat());
    assert_eq!(
        (altered.status.code(), String::from_utf8_lossy(&altered.stdout).trim()),
        (Some(1), "invalid: wrong_signer")
    );
}

/// `gateway admin set-tier` against a fresh SQLite file: a past `--until` is refused, a future one printed as a date.
#[test]
fn set_tier_refuses_a_past_until_and_prints_dates() {
    let dir = std::env::temp_dir().join(format!("set-tier-cli-{}-{}", std::process::id(), rand::random::<u64>()));
    let url = format!("sqlite://{}/gateway.db", dir.display());
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(args)
            .env_remove("GATEWAY_CONFIG")
            .env("DATABASE_URL", &url)
            .env("GATEWAY_DATA_DIR", &dir)
            .env("GATEWAY_SECRET", "22".repeat(32))
            .output()
            .expect("run the gateway binary")
    };
    let past = run(&["admin", "set-tier", "alice", "pro", "--until", "2020-01-01"]);
    assert!(!past.status.success());
    assert!(String::from_utf8_lossy(&past.stderr).contains("in the past"), "{}", String::from_utf8_lossy(&past.stderr));
    let future = run(&["admin", "set-tier", "alice", "pro", "--until", "2099-06-30"]);
    assert!(future.status.success(), "{}", String::from_utf8_lossy(&future.stderr));
    let shown: Value =
        serde_json::from_slice(future.stdout.split(|b| *b == b'\n').find(|l| l.starts_with(b"{")).unwrap()).unwrap();
    assert_eq!(shown["tier_until"], "2099-06-30T00:00:00Z");
    assert_eq!(shown["tier"], "pro");
    let _ = std::fs::remove_dir_all(&dir);
}
