//! Configuration in layers: built-in defaults, then an optional TOML file (`--config`), then the environment
//! (`GATEWAY_…`, with `__` between nested keys, e.g. `GATEWAY_SERVER__PORT=9000`), then `DATABASE_URL`.
//!
//! With nothing configured the gateway runs on an embedded SQLite file under `./data/` with a development
//! secret generated once and kept in `./data/dev-secret` (a warning says so at start-up).

use std::path::{Path, PathBuf};

use anyhow::Context;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// The shortest admin token accepted.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// Settings read from the environment as raw strings, never parsed as numbers or booleans.
const SECRET_KEYS: [&str; 3] = ["secret", "admin_token", "turn.relay.shared_secret"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub log: LogSettings,
    /// Directory for the embedded database and the development secret.
    pub data_dir: PathBuf,
    /// The web files (pages, scenes, SDK, vendored A-Frame and networked-aframe) are built into the binary;
    /// `web_dir` serves them from this directory instead (relative to the working directory), for development.
    pub web_dir: Option<PathBuf>,
    /// Hex-encoded secret (≥ 32 bytes) that signs session tokens and tickets. Generated in development (see
    /// `server.allow_development_secret`). Always read as a string, also from `GATEWAY_SECRET`.
    pub secret: Option<String>,
    /// Bearer token for the admin API, at least [`MIN_ADMIN_TOKEN_CHARS`] characters. Without one the admin API is
    /// disabled.
    pub admin_token: Option<String>,
    pub rates: RateSettings,
    pub payments: PaymentConfig,
    pub rooms: RoomSettings,
    /// Relay limits: frame size, messages per second, queue depths (see the signaling crate).
    #[serde(default, skip_serializing)]
    pub signaling: signaling::SignalingConfig,
    /// The TURN relay run beside the gateway (`[turn]`; see the turn crate). Off unless `enabled`.
    #[serde(default, skip_serializing)]
    pub turn: TurnSettings,
    /// Payment watchers run inside this process (`[watchers]`; see the watchers crate). None by default.
    #[serde(default, skip_serializing)]
    pub watchers: watchers::WatchersConfig,
    /// Hive API node (JSON-RPC) that creator sign-ins look account keys up on.
    pub hive_api_url: String,
    #[serde(default)]
    pub access: AccessSettings,
    /// Creators' webhooks: retries and back-off.
    #[serde(default)]
    pub webhooks: crate::live::webhooks::WebhookSettings,
    /// Coarse country of attendees from a local IP range file; off by default.
    #[serde(default)]
    pub geo: crate::geo::GeoSettings,
    /// How long personal data is kept (`[privacy]`).
    #[serde(default)]
    pub privacy: crate::privacy::PrivacySettings,
    /// Voice and screen share: mesh, the embedded SFU, or mesh up to a room size (`[media]`).
    #[serde(default)]
    pub media: crate::media_plane::MediaSettings,
    /// Several nodes serving the same events through one Redis (`[cluster]`, see `crate::cluster_node`). Absent:
    /// this process is the only node (in-process relay and capacity), as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterSettings>,
}

/// `[cluster]`: the broker and how this node takes part.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    /// The broker, `redis://host:port/db` (Redis 7, Debian's `redis-server`).
    pub redis_url: String,
    /// Prefix of every key and channel, so several deployments can share one Redis.
    pub namespace: String,
    /// Where browsers reach this node (`https://node-a.example.org`), handed out by the join endpoint; empty:
    /// `server.public_url`.
    pub public_url: String,
    /// How often this node beats and looks for dead nodes, milliseconds.
    pub heartbeat_ms: u64,
    /// A node silent for this long is dead: its peers leave their rooms and their seats are freed, ms.
    pub node_ttl_ms: u64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            redis_url: "redis://127.0.0.1:6379/".into(),
            namespace: "dlux".into(),
            public_url: String::new(),
            heartbeat_ms: 1000,
            node_ttl_ms: 5000,
        }
    }
}

/// Wallet access proofs: challenge lifetime, the seed message's clock window, and attempt rate limits (per node).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessSettings {
    /// How long an issued challenge may be signed and used.
    pub challenge_ttl_secs: u64,
    /// How far the seed message's `Access event {id} at {ms}` time may be from the server clock, either way.
    pub seed_message_window_secs: u64,
    /// Verification attempts per wallet per minute (0: unlimited).
    pub wallet_attempts_per_minute: u32,
    /// Verification attempts per client address per minute (0: unlimited).
    pub ip_attempts_per_minute: u32,
    /// Challenges issued per client address per minute (0: unlimited).
    pub ip_challenges_per_minute: u32,
    /// `mainnet`, `stagenet` or `testnet`: which Monero addresses may sign in. Bitcoin follows `payments.btc_network`.
    pub xmr_network: chains::signature::MoneroNetwork,
}

impl Default for AccessSettings {
    fn default() -> Self {
        AccessSettings {
            challenge_ttl_secs: 5 * 60,
            seed_message_window_secs: 5 * 60,
            wallet_attempts_per_minute: 10,
            ip_attempts_per_minute: 30,
            ip_challenges_per_minute: 60,
            xmr_network: chains::signature::MoneroNetwork::Mainnet,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateSettings {
    /// `coingecko` (the default) or `static` (the built-in table below, for offline use and tests).
    pub source: RateSourceKind,
    /// CoinGecko-compatible simple price endpoint.
    pub url: String,
    pub cache_secs: u64,
    /// USD per whole unit, by currency symbol; overrides the development table when `source = "static"`.
    pub table: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomSettings {
    /// Doors open this long before the event starts.
    pub early_open_secs: u64,
    /// Lifetime of the single-use session token the join endpoint returns.
    pub session_token_ttl_secs: u64,
    /// A connection without a session token must authenticate in its first frame within this time.
    pub auth_timeout_secs: u64,
    /// WebSocket ping interval; a connection silent for `idle_timeout_secs` is closed as timed out.
    pub ping_interval_secs: u64,
    pub idle_timeout_secs: u64,
    /// Attendance writes are batched: flushed every interval or at `attendance_max_batch` changes.
    pub attendance_flush_ms: u64,
    pub attendance_max_batch: usize,
    /// Store a hash of each wallet instead of the address in attendance rows.
    pub anonymise_attendance: bool,
}

/// `[turn]`: `enabled`, and the relay itself under `[turn.relay]` (listen addresses, public IP, port range,
/// realm, shared secret — derived from the server secret when empty —, TTL, URLs, allowed peers, quotas).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnSettings {
    pub enabled: bool,
    pub relay: turn_relay::TurnConfig,
}

/// Where buyers pay. Chains without their key configured are refused at quote time with
/// `payment_method_unavailable` (Hive needs only the platform account), chains no watcher follows with
/// `currency_not_payable` (see `crate::payments::payability`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentConfig {
    /// The Hive account HIVE and HBD payments go to (with the quote's memo).
    pub hive_account: String,
    /// Account-level extended public key for Bitcoin receiving addresses (zpub: BIP-84, ypub: BIP-49, xpub: BIP-44).
    pub btc_xpub: Option<String>,
    /// `mainnet`, `testnet`, `signet` or `regtest`: of the receiving addresses, and of the buyers' BTC wallets.
    pub btc_network: chains::signature::BtcNetwork,
    /// Where `btc_xpub` sits below the wallet's master key, `[fingerprint/path]` (e.g. `[d34db33f/84'/0'/0']`):
    /// written into payout PSBTs and the output descriptor so the wallet holding the seed recognises its keys.
    #[serde(default)]
    pub btc_key_origin: Option<String>,
    /// Fee rate of a Bitcoin payout batch, sat/vB, unless `gateway admin payouts --fee-rate` names another.
    #[serde(default = "default_btc_payout_fee_rate")]
    pub btc_payout_fee_rate: u64,
    /// Receiving addresses (BTC, EVM) never run more than this many indexes past the last paid one: the gap
    /// limit a wallet restored from the seed needs (see README, "Restoring the receiving wallet").
    #[serde(default = "default_max_address_gap")]
    pub max_address_gap: u32,
    /// An expired quote that received nothing gives its address back for reuse this long after it expired: at
    /// least `watch_window_secs`, so an address is never watched for two quotes at once (checked at start).
    #[serde(default = "default_address_reuse_after_secs")]
    pub address_reuse_after_secs: u64,
    /// Account-level xpub at m/44'/60'/0' for ETH, POL and BNB receiving addresses.
    pub evm_xpub: Option<String>,
    /// The Solana account SOL payments go to (told apart by their Solana Pay reference).
    pub sol_account: Option<String>,
    /// monero-wallet-rpc of the receiving wallet: each XMR quote gets a fresh subaddress of its account 0.
    pub xmr_wallet_rpc: Option<String>,
    /// How long a quote locks its rate and holds its seat.
    pub quote_ttl_secs: u64,
    /// How long after an event ends its payouts become due.
    pub payout_delay_secs: u64,
    /// How long after a quote closes (expired, paid, refunded) its address, memo or reference stays watched, so a
    /// late or second payment is still credited or refunded. Read from the database by every watcher, so it holds
    /// across restarts. After it, `gateway admin rescan` finds what was missed.
    pub watch_window_secs: u64,
    /// A BTC quote of at least this many satoshis waits for `btc_large_quote_confirmations` instead of
    /// `confirmations.btc` (BTCPay's speed policy, exchanges' tiers: a deeper reorg is worth more to an
    /// attacker on a large payment). 0 turns it off.
    pub btc_large_quote_sat: u64,
    pub btc_large_quote_confirmations: i64,
    /// Open (unpaid, unexpired) quotes one client address may have for one event; more get 429. 0: no limit.
    pub max_open_quotes_per_client: u32,
    /// Open quotes one buyer wallet may have for one event; more get 429. 0: no limit.
    pub max_open_quotes_per_wallet: u32,
    /// The share of an event's seats not yet sold that unpaid quotes may hold (0 < share <= 1; at least one
    /// seat). Quotes past it are issued unreserved: their payment takes a seat if one is free when it is final.
    pub max_unpaid_hold_share: f64,
    /// Confirmations required per chain (`btc`, `eth`, `pol`, `bnb`, `sol`, `hive`, `xmr`), over the defaults.
    pub confirmations: std::collections::BTreeMap<String, i64>,
    /// Stablecoins buyers may pay with: token code → ERC-20 contract or SPL mint, e.g.
    /// `"USDC.ETH" = "0xa0b8…"`, `usdc_sol = "EPjF…"` (quote dotted keys in TOML). A token is quoted only when
    /// listed here (and its network's key or account is configured); the network's watcher is told to credit it.
    #[serde(default)]
    pub tokens: std::collections::BTreeMap<String, String>,
    /// Chains whose watcher runs in another process sharing this database (a `gateway watch`, or the node that
    /// watches when several serve), e.g. `["btc", "eth"]`. A chain is quoted only when watched here (`[watchers]`)
    /// or listed here: otherwise a buyer's payment would never be credited (`currency_not_payable`).
    #[serde(default)]
    pub watched_elsewhere: Vec<String>,
}

fn default_btc_payout_fee_rate() -> u64 {
    5
}

fn default_max_address_gap() -> u32 {
    1000
}

fn default_address_reuse_after_secs() -> u64 {
    7 * 24 * 3600
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateSourceKind {
    Coingecko,
    Static,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// The public origin (scheme://host[:port]) clients use; the domain that access challenges name.
    pub public_url: Option<String>,
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub shutdown_grace_secs: u64,
    /// Unique name of this node; attendance rows it opens carry it so a restart closes only its own.
    pub node_id: String,
    /// Open connections served in full (HTTP keep-alive and WebSockets alike). Keep it below the process's
    /// open-file limit (`ulimit -n`), which the database, TURN and log files share.
    pub max_connections: usize,
    /// Connections accepted beyond `max_connections` only to answer `/healthz`, `/readyz` and `/metrics`;
    /// any other request on them gets 503 `over_capacity` with `Retry-After`. Past these the connection is
    /// closed at once.
    pub overflow_connections: usize,
    /// How long a client may take to send a request's headers, and how long an idle keep-alive connection
    /// is kept waiting for its next request.
    pub header_read_timeout_secs: u64,
    /// Longest wait for each part of a request body.
    pub body_timeout_secs: u64,
    /// Longest a request may take to be answered (its response's headers); past it the handler is dropped and
    /// the client gets 503 `request_timeout`. Room WebSockets and SSE streams are answered at once and live on
    /// past it: only the time to their first byte counts.
    pub request_timeout_secs: u64,
    /// Origins (`scheme://host[:port]`) whose pages may call the API and open room WebSockets, besides the
    /// gateway's own (`public_url`, or the origin a request names in its `Host`). `"*"` opens the public reads
    /// (GET and HEAD) to every origin, never with credentials; writes and WebSockets still need a listed origin.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Start with a generated development secret even though `public_url` is not a loopback address.
    #[serde(default)]
    pub allow_development_secret: bool,
    /// Reverse proxies (addresses or CIDR blocks) whose `X-Forwarded-For` names the client, e.g. `["127.0.0.1"]`
    /// behind a local nginx. Without one, the connection's peer is the client.
    #[serde(default)]
    pub trusted_proxies: Vec<turn_relay::peer_policy::Cidr>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive, e.g. `info` or `gateway=debug,sqlx=warn`. `RUST_LOG` overrides it.
    pub filter: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            server: ServerSettings {
                host: "127.0.0.1".into(),
                port: 8080,
                public_url: None,
                shutdown_grace_secs: 20,
                node_id: "node-1".into(),
                max_connections: 10_000,
                overflow_connections: 64,
                header_read_timeout_secs: 10,
                body_timeout_secs: 30,
                request_timeout_secs: 30,
                allowed_origins: Vec::new(),
                allow_development_secret: false,
                trusted_proxies: Vec::new(),
            },
            database: DatabaseSettings { url: "sqlite://data/gateway.db".into(), max_connections: 16 },
            log: LogSettings { format: LogFormat::Json, filter: "info,sqlx=warn".into() },
            data_dir: PathBuf::from("data"),
            web_dir: None,
            secret: None,
            admin_token: None,
            rooms: RoomSettings {
                early_open_secs: 15 * 60,
                session_token_ttl_secs: 120,
                auth_timeout_secs: 5,
                ping_interval_secs: 15,
                idle_timeout_secs: 45,
                attendance_flush_ms: 1000,
                attendance_max_batch: 500,
                anonymise_attendance: false,
            },
            signaling: Default::default(),
            turn: Default::default(),
            watchers: Default::default(),
            cluster: None,
            payments: PaymentConfig {
                hive_account: "dlux-tickets".into(),
                btc_xpub: None,
                btc_network: chains::signature::BtcNetwork::Mainnet,
                btc_key_origin: None,
                btc_payout_fee_rate: default_btc_payout_fee_rate(),
                max_address_gap: default_max_address_gap(),
                address_reuse_after_secs: default_address_reuse_after_secs(),
                evm_xpub: None,
                sol_account: None,
                xmr_wallet_rpc: None,
                quote_ttl_secs: 15 * 60,
                payout_delay_secs: 7 * 24 * 3600,
                watch_window_secs: 7 * 24 * 3600,
                btc_large_quote_sat: 10_000_000,
                btc_large_quote_confirmations: 6,
                max_open_quotes_per_client: 4,
                max_open_quotes_per_wallet: 4,
                max_unpaid_hold_share: 0.5,
                confirmations: Default::default(),
                tokens: Default::default(),
                watched_elsewhere: Vec::new(),
            },
            rates: RateSettings {
                source: RateSourceKind::Coingecko,
                url: "https://api.coingecko.com/api/v3/simple/price".into(),
                cache_secs: 60,
                table: Default::default(),
            },
            hive_api_url: "https://api.hive.blog".into(),
            access: AccessSettings::default(),
            webhooks: Default::default(),
            geo: Default::default(),
            privacy: Default::default(),
            media: Default::default(),
        }
    }
}

impl Settings {
    /// Reads the layers. `file` is the `--config` path, if any.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            anyhow::ensure!(file.exists(), "configuration file {} does not exist", file.display());
            figment = figment.merge(Toml::file(file));
        }
        // Secrets are strings whatever they look like: figment would read an all-digit value as an integer.
        let env = Env::prefixed("GATEWAY_").split("__");
        figment = figment.merge(env.clone().ignore(&SECRET_KEYS));
        for (key, value) in env.only(&SECRET_KEYS).iter() {
            figment = figment.merge((key.as_str().to_owned(), value));
        }
        if let Ok(url) = std::env::var("DATABASE_URL") {
            figment = figment.merge(("database.url", url));
        }
        let settings: Settings = figment.extract().context("invalid configuration")?;
        settings.validate()?;
        Ok(settings)
    }

    /// What the types alone can't say: the admin token's length, the allowed origins' form.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(token) = &self.admin_token {
            anyhow::ensure!(
                token.chars().count() >= MIN_ADMIN_TOKEN_CHARS,
                "`admin_token` must be at least {MIN_ADMIN_TOKEN_CHARS} characters (e.g. `openssl rand -hex 32`)"
            );
        }
        crate::http::origins::OriginPolicy::parse_list(&self.server.allowed_origins)
            .context("server.allowed_origins")?;
        anyhow::ensure!(
            self.payments.address_reuse_after_secs >= self.payments.watch_window_secs,
            "`payments.address_reuse_after_secs` ({}) must be at least `payments.watch_window_secs` ({}): a receiving \
             address still watched for its expired quote must not be handed to another",
            self.payments.address_reuse_after_secs,
            self.payments.watch_window_secs
        );
        Ok(())
    }

    /// Whether a generated development secret may be used: only when the public origin is a loopback address,
    /// or when `server.allow_development_secret` says so.
    pub fn development_secret_allowed(&self) -> bool {
        if self.server.allow_development_secret {
            return true;
        }
        let url = self.public_url(self.server.port);
        let host = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
        let host = host.split(['/', '?', '#']).next().unwrap_or_default();
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => host.rsplit_once(':').map_or(host, |(h, _)| h),
        };
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// The public origin, defaulting to the listening address.
    pub fn public_url(&self, port: u16) -> String {
        self.server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}:{}", self.server.host, port))
            .trim_end_matches('/')
            .to_owned()
    }
}

/// The server's signing secret, and whether it was generated for development.
#[derive(Clone)]
pub struct Secret {
    bytes: Vec<u8>,
    pub generated: bool,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    /// Uses the configured secret, or reads/creates `data_dir/dev-secret` (owner-only, 0600) when the public
    /// origin is a loopback address or `server.allow_development_secret` is set.
    pub fn resolve(settings: &Settings) -> anyhow::Result<Secret> {
        if let Some(hex_secret) = &settings.secret {
            let bytes = hex::decode(hex_secret.trim()).context("`secret` must be hex")?;
            anyhow::ensure!(bytes.len() >= 32, "`secret` must be at least 32 bytes (64 hex digits)");
            return Ok(Secret { bytes, generated: false });
        }
        anyhow::ensure!(
            settings.development_secret_allowed(),
            "no `secret` configured and the public URL {} is not a loopback address: set `secret` (or \
             GATEWAY_SECRET) to 64 hex digits, e.g. `openssl rand -hex 32`, or set `server.allow_development_secret`",
            settings.public_url(settings.server.port)
        );
        let path = settings.data_dir.join("dev-secret");
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(bytes) = hex::decode(text.trim()) {
                if bytes.len() >= 32 {
                    restrict_to_owner(&path)?;
                    return Ok(Secret { bytes, generated: true });
                }
            }
        }
        let mut bytes = vec![0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("cannot create {}", settings.data_dir.display()))?;
        write_owner_only(&path, hex::encode(&bytes).as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Secret { bytes, generated: true })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Writes a file only its owner can read (0600 on Unix), replacing any earlier one.
fn write_owner_only(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Takes group and world access away from a secret file an older version wrote readable by all.
fn restrict_to_owner(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot make {} readable by its owner only", path.display()))?;
            tracing::warn!(path = %path.display(), "the development secret was readable by others; now 0600");
        }
    }
    Ok(())
}

#[cfg(test)]
mod example;

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail closures return figment::Error, as its API has it
mod tests {
    use super::*;

    #[test]
    fn file_then_environment_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("gw.toml", "[server]\nport = 9000\nhost = \"0.0.0.0\"\n")?;
            jail.set_env("GATEWAY_SERVER__PORT", "9100");
            jail.set_env("DATABASE_URL", "postgres://u@localhost/db");
            let s = Settings::load(Some(Path::new("gw.toml"))).unwrap();
            assert_eq!(s.server.port, 9100);
            assert_eq!(s.server.host, "0.0.0.0");
            assert_eq!(s.database.url, "postgres://u@localhost/db");
            assert_eq!(s.log.format, LogFormat::Json);
            Ok(())
        });
    }

    #[test]
    fn turn_and_signaling_tables_parse() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "gw.toml",
                "[turn]\nenabled = true\n[turn.relay]\nrealm = \"dlux\"\ncredential_ttl_secs = 60\n[signaling]\nmax_frame_bytes = 1000\n",
            )?;
            let s = Settings::load(Some(Path::new("gw.toml"))).unwrap();
            assert!(s.turn.enabled);
            assert_eq!(s.turn.relay.realm, "dlux");
            assert_eq!(s.turn.relay.credential_ttl_secs, 60);
            assert_eq!(s.signaling.max_frame_bytes, 1000);
            jail.create_file("bad.toml", "[turn]\nenabeld = true\n")?;
            assert!(Settings::load(Some(Path::new("bad.toml"))).is_err());
            Ok(())
        });
    }

    #[test]
    fn token_contracts_parse_from_file_and_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "gw.toml",
                "[payments.tokens]\n\"USDC.ETH\" = \"0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48\"\n",
            )?;
            jail.set_env("GATEWAY_PAYMENTS__TOKENS__USDC_SOL", "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v");
            let s = Settings::load(Some(Path::new("gw.toml"))).unwrap();
            assert_eq!(s.payments.tokens.len(), 2, "{:?}", s.payments.tokens);
            assert_eq!(s.payments.tokens["USDC.ETH"], "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48");
            assert_eq!(s.payments.tokens["usdc_sol"], "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("gw.toml", "[server]\nprot = 9000\n")?;
            assert!(Settings::load(Some(Path::new("gw.toml"))).is_err());
            Ok(())
        });
    }

    #[test]
    fn development_secret_is_generated_once() {
        let dir = std::env::temp_dir().join(format!("gw-secret-{}", std::process::id()));
        let settings = Settings { data_dir: dir.clone(), ..Settings::default() };
        let a = Secret::resolve(&settings).unwrap();
        let b = Secret::resolve(&settings).unwrap();
        assert!(a.generated);
        assert_eq!(a.bytes(), b.bytes());
        std::fs::remove_dir_all(dir).unwrap();
        let short = Settings { secret: Some("abcd".into()), ..Settings::default() };
        assert!(Secret::resolve(&short).is_err());
    }

    #[test]
    fn all_digit_secrets_from_the_environment_stay_strings() {
        figment::Jail::expect_with(|jail| {
            let digits = "0123456789".repeat(7)[..64].to_owned();
            jail.set_env("GATEWAY_SECRET", &digits);
            jail.set_env("GATEWAY_ADMIN_TOKEN", "00001234567890123456");
            jail.set_env("GATEWAY_TURN__RELAY__SHARED_SECRET", "000123456789012345678901234567890");
            let s = Settings::load(None).unwrap();
            assert_eq!(s.secret.as_deref(), Some(digits.as_str()));
            assert_eq!(s.admin_token.as_deref(), Some("00001234567890123456"), "leading zeros kept");
            assert_eq!(s.turn.relay.shared_secret, "000123456789012345678901234567890");
            assert_eq!(Secret::resolve(&s).unwrap().bytes().len(), 32);
            Ok(())
        });
    }

    #[test]
    fn short_admin_tokens_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("GATEWAY_ADMIN_TOKEN", "x");
            let err = Settings::load(None).unwrap_err();
            assert!(format!("{err:#}").contains("at least 16 characters"), "{err:#}");
            jail.set_env("GATEWAY_ADMIN_TOKEN", "a".repeat(16));
            assert!(Settings::load(None).is_ok());
            Ok(())
        });
        let short = Settings { admin_token: Some("fifteen-chars!!".into()), ..Settings::default() };
        assert!(short.validate().is_err(), "the check also guards settings built in code");
    }

    #[cfg(unix)]
    #[test]
    fn the_development_secret_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("gw-secret-mode-{}", std::process::id()));
        let settings = Settings { data_dir: dir.clone(), ..Settings::default() };
        let path = dir.join("dev-secret");
        let mode = || std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let first = Secret::resolve(&settings).unwrap();
        assert_eq!(mode(), 0o600);
        // A file an older version left world-readable is tightened, and still used.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(Secret::resolve(&settings).unwrap().bytes(), first.bytes());
        assert_eq!(mode(), 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_generated_secret_is_refused_unless_the_public_url_is_loopback() {
        let dir = std::env::temp_dir().join(format!("gw-secret-public-{}", std::process::id()));
        let with = |public_url: Option<&str>, host: &str, allow: bool| {
            let mut s = Settings { data_dir: dir.clone(), ..Settings::default() };
            s.server.public_url = public_url.map(str::to_owned);
            s.server.host = host.into();
            s.server.allow_development_secret = allow;
            s
        };
        for (url, host) in [
            (None, "127.0.0.1"),
            (Some("http://localhost:8080"), "0.0.0.0"),
            (Some("http://[::1]:9"), "::1"),
            (Some("http://127.0.0.2/"), "127.0.0.1"),
        ] {
            assert!(Secret::resolve(&with(url, host, false)).is_ok(), "{url:?} {host}");
        }
        for (url, host) in [
            (Some("https://presence.example"), "127.0.0.1"),
            (None, "0.0.0.0"),
            (Some("https://127.0.0.1.example"), "127.0.0.1"),
        ] {
            let err = Secret::resolve(&with(url, host, false)).unwrap_err();
            assert!(err.to_string().contains("not a loopback address"), "{err}");
        }
        assert!(Secret::resolve(&with(Some("https://presence.example"), "0.0.0.0", true)).unwrap().generated);
        let configured =
            Settings { secret: Some("ab".repeat(32)), ..with(Some("https://presence.example"), "0.0.0.0", false) };
        assert!(!Secret::resolve(&configured).unwrap().generated);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
