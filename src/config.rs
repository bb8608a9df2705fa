//! Configuration: `config/herald.toml` (every key optional, defaults documented there), then
//! `HERALD_*` environment overrides, then validation. One struct per TOML section.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The JWT secret shipped for dev mode; Herald refuses to start with it when `dev = false`.
pub const DEV_JWT_SECRET: &str = "herald-dev-secret-change-me-please-32b";

/// Why the configuration cannot be used; the message says which key to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read: fix the path given with `--config`.
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// The TOML is malformed or a key has the wrong type.
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    /// A value is out of range or unsafe.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Dev mode: seeds demo users and allows the default JWT secret.
    pub dev: bool,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub jwt: JwtConfig,
    pub auth: AuthConfig,
    pub chat: ChatConfig,
    pub notifications: NotificationsConfig,
    pub rooms: RoomsConfig,
    pub cluster: ClusterConfig,
}

/// `[server]`: sockets, HTTP bounds and timeouts.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: String,
    pub reactors: usize,
    pub max_connections: usize,
    pub header_timeout_ms: u64,
    pub keepalive_timeout_ms: u64,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_body_bytes: usize,
    pub shutdown_deadline_ms: u64,
    pub cors_allowed_origins: Vec<String>,
    pub metrics_loopback_only: bool,
    /// Serve the web client at `GET /` (SPEC §9); unset means on in dev mode, off in production.
    pub web_client: Option<bool>,
    /// Peers (CIDR blocks) whose `X-Forwarded-For` names the client (SPEC §7); empty: none.
    pub trusted_proxies: Vec<String>,
}

/// `[database]`: the store URL and the worker pool feeding it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
    pub workers: usize,
    pub chat_shards: usize,
    pub max_batch: usize,
    pub queue_capacity: usize,
}

/// `[jwt]`: HS256 secret and token lifetimes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    pub secret: String,
    pub access_ttl_secs: i64,
    pub refresh_ttl_secs: i64,
}

/// `[auth]`: login throttling.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub login_per_ip_per_minute: u32,
    pub login_per_username_per_minute: u32,
}

/// `[chat]`: STOMP limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    pub max_message_chars: usize,
    pub max_frame_bytes: usize,
    pub max_subscriptions: usize,
    pub outbound_buffer_bytes: usize,
    pub heartbeat_ms: u64,
    pub ws_read_buffer_bytes: usize,
    /// STOMP transactions open at once on one connection; one more `BEGIN` is an `ERROR` and a close.
    pub max_open_transactions: usize,
    /// SENDs held by one open transaction until its `COMMIT`; one more is an `ERROR` and a close.
    pub max_transaction_sends: usize,
    /// SENDs of one connection waiting for their commit; beyond it the server stops reading that
    /// connection until commits return (TCP backpressure, never an error).
    pub max_inflight_sends: usize,
}

/// `[notifications]`: SSE and direct notifications.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsConfig {
    pub ping_interval_ms: u64,
    pub direct_per_sender_per_minute: u32,
    pub replay_limit: u32,
}

/// `[rooms]`: rooms created through the API (SPEC §8).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomsConfig {
    /// Most members of one created room (private or public); an invitation beyond it is 409.
    pub max_members: usize,
}

/// `[cluster]`: scale-out over Redis pub/sub (SPEC §6), and the per-topic delivery order that a
/// single node uses too.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://[user:pass@]host:port[/db]`; empty: a single node (no Redis).
    pub redis_url: String,
    /// How long an event that arrived before the ones it follows waits for them before they are
    /// read from the store.
    pub gap_timeout_ms: u64,
    /// While Redis is unreachable: how often the store is polled for the rooms and users that
    /// have listeners on this node.
    pub poll_interval_ms: u64,
    /// With Redis up: how often the same check runs anyway, to catch a lost publish that no later
    /// event reveals (0: never).
    pub audit_interval_ms: u64,
    /// Events held per room or user while waiting for a missing one; over it, the store is read
    /// at once (and at twice it, the gap is given up on).
    pub max_held_events: usize,
    /// Committed batches waiting to be published to Redis; over it, batches are not published
    /// (the other nodes read them from the store).
    pub publish_queue: usize,
}

impl ClusterConfig {
    /// Whether Redis scale-out is on.
    pub fn enabled(&self) -> bool {
        !self.redis_url.is_empty()
    }

    /// `gap_timeout_ms` as a duration.
    pub fn gap_timeout(&self) -> Duration {
        Duration::from_millis(self.gap_timeout_ms)
    }

    /// `poll_interval_ms` as a duration.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    /// `audit_interval_ms` as a duration; `None` when off.
    pub fn audit_interval(&self) -> Option<Duration> {
        (self.audit_interval_ms > 0).then(|| Duration::from_millis(self.audit_interval_ms))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            dev: true,
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            jwt: JwtConfig::default(),
            auth: AuthConfig::default(),
            chat: ChatConfig::default(),
            notifications: NotificationsConfig::default(),
            rooms: RoomsConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "0.0.0.0:8080".into(),
            reactors: 0,
            max_connections: 19_000,
            header_timeout_ms: 10_000,
            keepalive_timeout_ms: 75_000,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_body_bytes: 64 * 1024,
            shutdown_deadline_ms: 10_000,
            cors_allowed_origins: vec!["*".into()],
            metrics_loopback_only: true,
            web_client: None,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://data/herald.db".into(),
            workers: 4,
            chat_shards: 2,
            max_batch: 512,
            queue_capacity: 65_536,
        }
    }
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            secret: DEV_JWT_SECRET.into(),
            access_ttl_secs: 900,
            refresh_ttl_secs: 14 * 24 * 3600,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            login_per_ip_per_minute: 60,
            login_per_username_per_minute: 10,
        }
    }
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            max_message_chars: 2000,
            max_frame_bytes: 64 * 1024,
            max_subscriptions: 100,
            outbound_buffer_bytes: 1024 * 1024,
            heartbeat_ms: 10_000,
            ws_read_buffer_bytes: 65536,
            max_open_transactions: 16,
            max_transaction_sends: 1000,
            max_inflight_sends: 256,
        }
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis_url: String::new(),
            gap_timeout_ms: 250,
            poll_interval_ms: 500,
            audit_interval_ms: 5000,
            max_held_events: 1024,
            publish_queue: 16_384,
        }
    }
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            ping_interval_ms: 15_000,
            direct_per_sender_per_minute: 60,
            replay_limit: 1000,
        }
    }
}

impl Default for RoomsConfig {
    fn default() -> Self {
        RoomsConfig { max_members: 1000 }
    }
}

impl Config {
    /// Reads `path` (a missing default path is fine: defaults apply), applies the environment and
    /// checks the values every command needs. Serving needs [`Config::validate`] as well (the JWT
    /// secret), which `migrate` and `user add` do not use.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let default_path = Path::new("config/herald.toml");
        let (path, required) = match path {
            Some(p) => (p, true),
            None => (default_path, false),
        };
        let mut config = match std::fs::read_to_string(path) {
            Ok(text) => Config::from_toml(&text).map_err(|message| ConfigError::Parse {
                path: path.display().to_string(),
                message,
            })?,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        config.check_values()?;
        Ok(config)
    }

    /// Parses TOML text over the defaults.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Applies the `HERALD_*` overrides of SPEC §7; `lookup` is `std::env::var` outside tests.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = lookup("HERALD_BIND") {
            self.server.bind = v;
        }
        if let Some(v) = lookup("HERALD_REACTORS") {
            self.server.reactors = v
                .parse()
                .map_err(|_| ConfigError::Invalid(format!("HERALD_REACTORS must be a number, got {v:?}")))?;
        }
        if let Some(v) = lookup("HERALD_DATABASE_URL") {
            self.database.url = v;
        }
        if let Some(v) = lookup("HERALD_JWT_SECRET") {
            self.jwt.secret = v;
        }
        if let Some(v) = lookup("HERALD_DEV") {
            self.dev = match v.as_str() {
                "1" | "true" => true,
                "0" | "false" => false,
                _ => return Err(ConfigError::Invalid(format!("HERALD_DEV must be 1 or 0, got {v:?}"))),
            };
        }
        if let Some(v) = lookup("HERALD_REDIS_URL") {
            self.cluster.redis_url = v;
        }
        Ok(())
    }

    /// Checks ranges and the production-safety rules (no default secret outside dev mode): what
    /// serving needs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_values()?;
        self.check_secret()
    }

    /// The JWT secret rules: not the dev default and at least 32 bytes outside dev mode.
    fn check_secret(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if !self.dev && self.jwt.secret == DEV_JWT_SECRET {
            return invalid("jwt.secret is the dev default; set HERALD_JWT_SECRET (>= 32 bytes) or HERALD_DEV=1");
        }
        if !self.dev && self.jwt.secret.len() < 32 {
            return invalid("jwt.secret must be at least 32 bytes outside dev mode");
        }
        if self.jwt.secret.is_empty() {
            return invalid("jwt.secret must not be empty");
        }
        Ok(())
    }

    /// Ranges and formats of every other key.
    fn check_values(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if self.server.bind.parse::<SocketAddr>().is_err() {
            return invalid(&format!("server.bind {:?} is not an address:port", self.server.bind));
        }
        if self.jwt.access_ttl_secs <= 0 || self.jwt.refresh_ttl_secs <= 0 {
            return invalid("jwt.access_ttl_secs and jwt.refresh_ttl_secs must be positive");
        }
        if self.database.workers == 0 || self.database.chat_shards == 0 || self.database.max_batch == 0 {
            return invalid("database.workers, chat_shards and max_batch must be at least 1");
        }
        if self.server.max_header_bytes < 512 || self.server.max_headers == 0 {
            return invalid("server.max_header_bytes must be >= 512 and max_headers >= 1");
        }
        if self.chat.max_frame_bytes < 1024 || self.chat.outbound_buffer_bytes < self.chat.max_frame_bytes {
            return invalid("chat.max_frame_bytes must be >= 1024 and <= chat.outbound_buffer_bytes");
        }
        if self.chat.max_subscriptions == 0 || self.chat.max_message_chars == 0 {
            return invalid("chat.max_subscriptions and chat.max_message_chars must be at least 1");
        }
        if self.rooms.max_members < 2 {
            return invalid("rooms.max_members must be at least 2 (a direct-message room has two)");
        }
        if self.chat.max_open_transactions == 0
            || self.chat.max_transaction_sends == 0
            || self.chat.max_inflight_sends == 0
        {
            return invalid(
                "chat.max_open_transactions, chat.max_transaction_sends and chat.max_inflight_sends must be at least 1",
            );
        }
        // A committed transaction is one job of the chat queue, whose SENDs all count in flight.
        if self.chat.max_transaction_sends > 100_000 || self.chat.max_open_transactions > 1024 {
            return invalid("chat.max_transaction_sends must be <= 100000 and chat.max_open_transactions <= 1024");
        }
        if self.notifications.ping_interval_ms < 100 {
            return invalid("notifications.ping_interval_ms must be >= 100");
        }
        if let Err(e) = crate::http::client_addr::TrustedProxies::parse(&self.server.trusted_proxies) {
            return invalid(&format!("server.trusted_proxies: {e}"));
        }
        self.validate_cluster()?;
        Ok(())
    }

    /// The `[cluster]` rules: Redis only with MySQL, a usable URL, sane timings.
    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let c = &self.cluster;
        if c.gap_timeout_ms == 0 || c.gap_timeout_ms > 60_000 {
            return invalid("cluster.gap_timeout_ms must be 1..=60000".into());
        }
        if c.poll_interval_ms < 10 || c.poll_interval_ms > 600_000 {
            return invalid("cluster.poll_interval_ms must be 10..=600000".into());
        }
        if c.max_held_events == 0 || c.publish_queue == 0 {
            return invalid("cluster.max_held_events and cluster.publish_queue must be at least 1".into());
        }
        if !c.enabled() {
            return Ok(());
        }
        if !(c.redis_url.starts_with("redis://") || c.redis_url.starts_with("redis+unix://")) {
            return invalid(format!(
                "cluster.redis_url {:?} must start with redis:// (e.g. redis://127.0.0.1:6379)",
                crate::store::redact(&c.redis_url)
            ));
        }
        if self.database.url.starts_with("sqlite://") {
            return invalid(
                "cluster.redis_url (HERALD_REDIS_URL) is set but database.url is sqlite://: SQLite is \
                 single-node; scale-out needs every node on one MySQL database (set HERALD_DATABASE_URL=mysql://…, \
                 or unset HERALD_REDIS_URL)"
                    .into(),
            );
        }
        Ok(())
    }

    /// How many reactor threads to run: `server.reactors`, or one per core when 0.
    pub fn reactor_count(&self) -> usize {
        match self.server.reactors {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// `server.header_timeout_ms` as a duration.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.server.header_timeout_ms)
    }

    /// `server.keepalive_timeout_ms` as a duration.
    pub fn keepalive_timeout(&self) -> Duration {
        Duration::from_millis(self.server.keepalive_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_in_dev_mode() {
        let c = Config::default();
        assert!(c.dev);
        c.validate().expect("defaults validate");
    }

    #[test]
    fn production_refuses_the_default_secret() {
        let mut c = Config::default();
        c.apply_env(|k| (k == "HERALD_DEV").then(|| "0".to_string()))
            .expect("env");
        let err = c.validate().expect_err("must refuse");
        assert!(err.to_string().contains("dev default"), "{err}");
        c.jwt.secret = "short".into();
        assert!(c.validate().is_err());
        c.jwt.secret = "x".repeat(32);
        c.validate().expect("32-byte secret is fine");
    }

    #[test]
    fn env_overrides_apply() {
        let mut c = Config::default();
        c.apply_env(|k| match k {
            "HERALD_BIND" => Some("127.0.0.1:9999".into()),
            "HERALD_REACTORS" => Some("3".into()),
            "HERALD_DATABASE_URL" => Some("mysql://u:p@h:3306/d".into()),
            _ => None,
        })
        .expect("env");
        assert_eq!(c.server.bind, "127.0.0.1:9999");
        assert_eq!(c.reactor_count(), 3);
        assert_eq!(c.database.url, "mysql://u:p@h:3306/d");
        assert!(c
            .apply_env(|k| (k == "HERALD_REACTORS").then(|| "many".into()))
            .is_err());
        assert!(c.apply_env(|k| (k == "HERALD_DEV").then(|| "yes".into())).is_err());
    }

    #[test]
    fn toml_keys_and_unknown_keys() {
        let c = Config::from_toml("dev = false\n[server]\nbind = \"127.0.0.1:1\"\n[chat]\nmax_subscriptions = 5\n")
            .expect("parse");
        assert!(!c.dev);
        assert_eq!(c.chat.max_subscriptions, 5);
        assert_eq!(c.chat.max_frame_bytes, 65536, "unset keys keep defaults");
        let rooms = Config::from_toml("[rooms]\nmax_members = 3\n").expect("parse");
        assert_eq!(rooms.rooms.max_members, 3);
        assert_eq!(Config::default().rooms.max_members, 1000);
        let mut tiny = Config::default();
        tiny.rooms.max_members = 1;
        assert!(tiny.validate().is_err());
        assert!(
            Config::from_toml("[server]\nbnid = \"x\"\n").is_err(),
            "typos are reported"
        );
        assert!(Config::from_toml("[server]\nreactors = \"two\"\n").is_err());
    }

    #[test]
    fn stomp_bounds_have_defaults_and_are_validated() {
        let c = Config::default();
        assert_eq!(
            (
                c.chat.max_open_transactions,
                c.chat.max_transaction_sends,
                c.chat.max_inflight_sends
            ),
            (16, 1000, 256)
        );
        for key in ["max_open_transactions", "max_transaction_sends", "max_inflight_sends"] {
            let c = Config::from_toml(&format!("[chat]\n{key} = 0\n")).expect("parse");
            let err = c.validate().expect_err("0 is refused");
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
        let c = Config::from_toml("[chat]\nmax_transaction_sends = 100001\n").expect("parse");
        assert!(c.validate().is_err());
        let c = Config::from_toml("[chat]\nmax_inflight_sends = 1\nmax_open_transactions = 2\n").expect("parse");
        c.validate().expect("small bounds are fine");
        assert_eq!((c.chat.max_inflight_sends, c.chat.max_open_transactions), (1, 2));
    }

    #[test]
    fn trusted_proxies_must_be_cidr_blocks() {
        let c = Config::from_toml("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n").expect("parse");
        c.validate().expect("valid blocks");
        let c = Config::from_toml("[server]\ntrusted_proxies = [\"10.0.0.0/40\"]\n").expect("parse");
        let err = c.validate().expect_err("bad prefix").to_string();
        assert!(err.contains("server.trusted_proxies"), "{err}");
    }

    #[test]
    fn redis_needs_mysql_and_a_redis_url() {
        let mut c = Config::default();
        c.apply_env(|k| (k == "HERALD_REDIS_URL").then(|| "redis://127.0.0.1:6379".into()))
            .expect("env");
        assert_eq!(c.cluster.redis_url, "redis://127.0.0.1:6379");
        let err = c.validate().expect_err("sqlite with redis");
        assert!(err.to_string().contains("SQLite is single-node"), "{err}");
        c.database.url = "mysql://u:p@h:3306/d".into();
        c.validate().expect("mysql with redis");
        c.cluster.redis_url = "http://u:hunter2@h".into();
        let err = c.validate().expect_err("not redis").to_string();
        assert!(err.contains("redis://") && !err.contains("hunter2"), "{err}");
        c.cluster.redis_url.clear();
        c.cluster.gap_timeout_ms = 0;
        assert!(c.validate().is_err());
        c.cluster.gap_timeout_ms = 250;
        c.cluster.poll_interval_ms = 1;
        assert!(c.validate().is_err());
        c.cluster.poll_interval_ms = 500;
        c.cluster.max_held_events = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn shipped_config_file_parses_and_validates() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/herald.toml"))
            .expect("config/herald.toml ships");
        let c = Config::from_toml(&text).expect("parses");
        c.validate().expect("validates");
        assert!(
            c.dev,
            "the shipped file says dev so `cargo run --release` works at once"
        );
    }
}
