//! What every reactor and worker shares: configuration, keys, the store pool, the chat writer,
//! the bus, metrics and the rate limiters. Built once at start-up, behind an `Arc`.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::auth::jwt::{Claims, JwtError, JwtKeys, TokenType};
use crate::auth::rate_limit::RateLimiter;
use crate::bus::Bus;
use crate::chat::ChatWriter;
use crate::config::Config;
use crate::http::client_addr::TrustedProxies;
use crate::http::cors::Cors;
use crate::http::request::HttpLimits;
use crate::metrics::Metrics;
use crate::stomp::frame::Limits as StompLimits;
use crate::stomp::session::{Principal, SessionConfig};
use crate::store::pool::StorePool;

/// How many distinct keys each limiter tracks at most (memory bound under a spray of names).
const LIMITER_KEYS: usize = 100_000;

/// The process's shared state.
pub struct Shared {
    pub config: Config,
    pub keys: JwtKeys,
    pub pool: StorePool,
    pub chat: ChatWriter,
    pub bus: Arc<Bus>,
    pub metrics: Arc<Metrics>,
    pub cors: Cors,
    /// `server.trusted_proxies`: whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    pub http_limits: HttpLimits,
    pub stomp_limits: StompLimits,
    pub ws_limits: crate::websocket::Limits,
    pub session: SessionConfig,
    login_per_ip: Mutex<RateLimiter>,
    login_per_user: Mutex<RateLimiter>,
    direct_per_sender: Mutex<RateLimiter>,
    /// Set on SIGTERM/SIGINT: reactors stop accepting and close their connections.
    pub shutdown: AtomicBool,
}

impl Shared {
    /// Everything built; `pool`, `chat` and `bus` are already running.
    pub fn new(config: Config, pool: StorePool, chat: ChatWriter, bus: Arc<Bus>, metrics: Arc<Metrics>) -> Shared {
        let minute = Duration::from_secs(60);
        Shared {
            keys: JwtKeys::new(
                &config.jwt.secret,
                config.jwt.access_ttl_secs,
                config.jwt.refresh_ttl_secs,
            ),
            cors: Cors::new(&config.server.cors_allowed_origins),
            // Validated with the rest of the configuration; an invalid list trusts nobody.
            trusted_proxies: TrustedProxies::parse(&config.server.trusted_proxies).unwrap_or_default(),
            http_limits: HttpLimits {
                max_header_bytes: config.server.max_header_bytes,
                max_headers: config.server.max_headers,
                max_body_bytes: config.server.max_body_bytes,
            },
            stomp_limits: StompLimits {
                max_frame_bytes: config.chat.max_frame_bytes,
                max_headers: 64,
            },
            ws_limits: crate::websocket::Limits {
                max_message: config.chat.max_frame_bytes,
            },
            session: SessionConfig {
                max_subscriptions: config.chat.max_subscriptions,
                heartbeat_ms: config.chat.heartbeat_ms,
                server: format!("herald/{}", env!("CARGO_PKG_VERSION")),
                max_transactions: config.chat.max_open_transactions,
                max_transaction_sends: config.chat.max_transaction_sends,
                max_inflight_sends: config.chat.max_inflight_sends,
            },
            login_per_ip: Mutex::new(RateLimiter::new(
                config.auth.login_per_ip_per_minute,
                minute,
                LIMITER_KEYS,
            )),
            login_per_user: Mutex::new(RateLimiter::new(
                config.auth.login_per_username_per_minute,
                minute,
                LIMITER_KEYS,
            )),
            direct_per_sender: Mutex::new(RateLimiter::new(
                config.notifications.direct_per_sender_per_minute,
                minute,
                LIMITER_KEYS,
            )),
            shutdown: AtomicBool::new(false),
            config,
            pool,
            chat,
            bus,
            metrics,
        }
    }

    /// Counts a login attempt against the client address and the username.
    pub fn check_login_rate(&self, ip: &str, username: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let by_ip = self
            .login_per_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .check(ip, now);
        let by_user = self
            .login_per_user
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .check(username, now);
        match (by_ip, by_user) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(a), Err(b)) => Err(a.max(b)),
            (Err(a), _) | (_, Err(a)) => Err(a),
        }
    }

    /// Counts a direct notification sent by `sender`.
    pub fn check_direct_rate(&self, sender: &str) -> Result<(), Duration> {
        self.direct_per_sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .check(sender, Instant::now())
    }

    /// Verifies an access token (cheap HMAC: done on the reactor).
    pub fn verify_access(&self, token: &str) -> Result<Claims, JwtError> {
        self.keys.verify(token, TokenType::Access, crate::clock::now_secs())
    }

    /// A STOMP/SSE principal from an access token, with the reason a session gets when it fails.
    pub fn principal(&self, token: &str) -> Result<Principal, &'static str> {
        match self.verify_access(token) {
            Ok(c) => Ok(Principal {
                username: c.sub,
                user_id: c.uid,
                expires_at_secs: c.exp,
            }),
            Err(JwtError::Expired) => Err("token expired"),
            Err(_) => Err("invalid token"),
        }
    }
}
