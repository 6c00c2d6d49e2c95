//! `deploy/gateway.example.toml` documents every setting: it loads as it is, it loads with every commented-out
//! setting uncommented, and every key the settings have (each watcher's, the relay's, the signalling limits')
//! appears in it.

use std::collections::BTreeSet;
use std::path::Path;

use figment::providers::{Format, Toml};
use figment::Figment;

use super::Settings;

fn example_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/gateway.example.toml")
}

/// The example with its commented-out settings (`# key = value`) and tables (`# [table]`) uncommented.
fn uncommented(text: &str) -> String {
    let assignment = |line: &str| {
        let key: String = line.chars().take_while(|c| c.is_ascii_alphanumeric() || "_.\"".contains(*c)).collect();
        !key.is_empty() && line[key.len()..].trim_start().starts_with('=')
    };
    let table = |line: &str| {
        line.starts_with('[')
            && line.ends_with(']')
            && line.trim_matches(['[', ']']).chars().all(|c| c.is_ascii_lowercase() || "_.".contains(c))
    };
    text.lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if assignment(rest) || table(rest.trim_end()) => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every key path of a JSON value: tables joined with `.`, array elements as `[]`.
fn keys(value: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                out.insert(path.clone());
                keys(value, &path, out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items.iter().filter(|i| i.is_object()) {
                keys(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

fn load(text: &str) -> Settings {
    let settings: Settings = Figment::from(figment::providers::Serialized::defaults(Settings::default()))
        .merge(Toml::string(text))
        .extract()
        .unwrap_or_else(|err| panic!("the example does not load: {err}"));
    settings.validate().unwrap();
    settings
}

#[test]
fn the_example_configuration_names_every_setting() {
    let text = std::fs::read_to_string(example_path()).unwrap();
    load(&text);
    let full_text = uncommented(&text);
    let full = load(&full_text);
    assert!(!full.watchers.evm.is_empty() && full.watchers.btc.is_some() && full.watchers.solana.is_some());
    assert!(full.watchers.hive.is_some() && full.watchers.monero.is_some(), "a watcher example per chain");

    let mut documented = BTreeSet::new();
    let raw: serde_json::Value = Figment::from(Toml::string(&full_text)).extract().unwrap();
    keys(&raw, "", &mut documented);

    let mut required = BTreeSet::new();
    keys(&serde_json::to_value(&full).unwrap(), "", &mut required);
    keys(&serde_json::to_value(Settings::default()).unwrap(), "", &mut required);
    // Sections the figment defaults leave out (their own crates' defaults apply).
    keys(&serde_json::to_value(&full.signaling).unwrap(), "signaling", &mut required);
    keys(&serde_json::to_value(&full.turn).unwrap(), "turn", &mut required);
    keys(&serde_json::to_value(&full.watchers).unwrap(), "watchers", &mut required);
    let missing: Vec<_> = required.difference(&documented).collect();
    assert!(missing.is_empty(), "settings missing from deploy/gateway.example.toml: {missing:?}");
}

#[test]
fn a_missing_setting_is_noticed() {
    let text = std::fs::read_to_string(example_path()).unwrap();
    let without: String = text.lines().filter(|l| !l.contains("signature_limit")).collect::<Vec<_>>().join("\n");
    let full = load(&uncommented(&without));
    let mut documented = BTreeSet::new();
    keys(&Figment::from(Toml::string(&uncommented(&without))).extract().unwrap(), "", &mut documented);
    let mut required = BTreeSet::new();
    keys(&serde_json::to_value(&full.watchers).unwrap(), "watchers", &mut required);
    assert!(
        required.contains("watchers.solana.signature_limit") && !documented.contains("watchers.solana.signature_limit")
    );
}
