//! Starting and stopping a `herald` process on a fresh SQLite file or a fresh MariaDB database.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

use super::http::{Request, Response};

/// Where the MariaDB/MySQL server used by the tests listens, unless `HERALD_TEST_MYSQL_URL` says otherwise.
pub const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// How long a server may take to answer `GET /health` after it was spawned.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// The store a server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Mysql,
}

impl Backend {
    pub fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Mysql => "mysql",
        }
    }
}

fn mysql_admin_url() -> String {
    std::env::var("HERALD_TEST_MYSQL_URL").unwrap_or_else(|_| DEFAULT_MYSQL_URL.to_string())
}

fn mysql_admin() -> Result<mysql::Conn, mysql::Error> {
    let opts = mysql::Opts::from_url(&mysql_admin_url())?;
    let opts = mysql::OptsBuilder::from_opts(opts).tcp_connect_timeout(Some(Duration::from_secs(3)));
    mysql::Conn::new(opts)
}

/// The admin URL with its database replaced by `db`.
fn mysql_url_for(db: &str) -> String {
    let admin = mysql_admin_url();
    let authority_start = admin.find("://").map_or(0, |i| i + 3);
    let path_start = admin[authority_start..]
        .find(['/', '?'])
        .map_or(admin.len(), |i| authority_start + i);
    format!("{}/{db}", &admin[..path_start])
}

/// The backends every scenario runs on: SQLite always, MariaDB when reachable. An unreachable
/// MariaDB fails the test when `CI=true`, and is otherwise skipped with a loud notice.
pub fn backends() -> Vec<Backend> {
    static MYSQL_UP: OnceLock<bool> = OnceLock::new();
    let up = *MYSQL_UP.get_or_init(|| match mysql_admin() {
        Ok(_) => true,
        Err(e) => {
            let url = mysql_admin_url();
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "MariaDB/MySQL at {url} is unreachable ({e}) and CI=true: the MySQL backend must be tested"
            );
            // Straight to the process's stderr: libtest would capture `eprintln!` of a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                 !! SKIP: MariaDB/MySQL at {url} is unreachable ({e}).\n\
                 !! The MySQL half of the integration tests is SKIPPED; only SQLite runs.\n\
                 !! Start MariaDB or set HERALD_TEST_MYSQL_URL; CI=true makes this a failure.\n\
                 !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
            );
            false
        }
    });
    if up {
        vec![Backend::Sqlite, Backend::Mysql]
    } else {
        vec![Backend::Sqlite]
    }
}

/// A `herald.toml` for one server: `(section, key) -> raw TOML value`, section "" being top level.
#[derive(Debug, Clone)]
pub struct Config {
    values: BTreeMap<(String, String), String>,
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

impl Config {
    /// Test defaults: dev mode, and rate limits high enough that scenarios sharing a server never
    /// trip them by accident (the scenarios that test them lower them again).
    pub fn new() -> Config {
        Config {
            values: BTreeMap::new(),
        }
        .set("", "dev", "true")
        .set("auth", "login_per_ip_per_minute", 100_000)
        .set("auth", "login_per_username_per_minute", 100_000)
        .set("notifications", "direct_per_sender_per_minute", 100_000)
    }

    /// Sets `key` in `[section]` to `value`, written as-is (quote strings yourself, or use [`Config::set_str`]).
    pub fn set(mut self, section: &str, key: &str, value: impl ToString) -> Config {
        self.values
            .insert((section.to_string(), key.to_string()), value.to_string());
        self
    }

    /// Sets a string value.
    pub fn set_str(self, section: &str, key: &str, value: &str) -> Config {
        let quoted = serde_json::Value::String(value.to_string()).to_string();
        self.set(section, key, quoted)
    }

    /// The TOML text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut current: Option<&str> = None;
        for ((section, key), value) in &self.values {
            if current != Some(section.as_str()) {
                if !section.is_empty() {
                    out.push_str(&format!("\n[{section}]\n"));
                }
                current = Some(section);
            }
            out.push_str(&format!("{key} = {value}\n"));
        }
        out
    }
}

/// A fresh, empty temp directory for one server.
fn server_dir() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("herald-it-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the server's temp dir");
    dir
}

/// Creates a fresh, empty MariaDB database and returns its name.
fn fresh_database() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "herald_it_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() % 1_000_000)
    );
    let mut admin = mysql_admin().expect("connect to MariaDB to create a test database");
    admin
        .query_drop(format!("DROP DATABASE IF EXISTS {name}"))
        .and_then(|_| admin.query_drop(format!("CREATE DATABASE {name} CHARACTER SET utf8mb4")))
        .expect("create the test database");
    name
}

/// A MariaDB database shared by several servers (a cluster's nodes), dropped with this value.
pub struct SharedDatabase {
    pub name: String,
    /// `mysql://…/<name>`.
    pub url: String,
}

impl SharedDatabase {
    /// A fresh database; `None` when MariaDB is unreachable.
    pub fn create() -> Option<SharedDatabase> {
        mysql_admin().ok()?;
        let name = fresh_database();
        Some(SharedDatabase {
            url: mysql_url_for(&name),
            name,
        })
    }

    /// Runs `sql` with the admin connection, in this database.
    pub fn query<T: mysql::prelude::FromRow>(&self, sql: &str) -> Vec<T> {
        let mut admin = mysql_admin().expect("connect to MariaDB");
        admin
            .query_drop(format!("USE {}", self.name))
            .expect("use the database");
        admin.query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

impl Drop for SharedDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = mysql_admin() {
            let _ = admin.query_drop(format!("DROP DATABASE IF EXISTS {}", self.name));
        }
    }
}

/// A running `herald` process, stopped (SIGTERM, then SIGKILL after 3 s) and cleaned up on drop.
pub struct Server {
    pub addr: SocketAddr,
    pub backend: Backend,
    child: Mutex<Child>,
    dir: PathBuf,
    mysql_db: Option<String>,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

impl Server {
    /// Spawns the binary with `config`, on a fresh database, and waits until `/health` says 200.
    pub fn start(backend: Backend, config: &Config) -> Server {
        Server::start_with_url(backend, config, &|url| url.to_string())
    }

    /// Like [`Server::start`], with the database URL passed through `rewrite` (to reach the store
    /// through a proxy, say).
    pub fn start_with_url(backend: Backend, config: &Config, rewrite: &dyn Fn(&str) -> String) -> Server {
        let dir = server_dir();
        let (db_url, mysql_db) = match backend {
            Backend::Sqlite => (format!("sqlite://{}/herald.db", dir.display()), None),
            Backend::Mysql => {
                let name = fresh_database();
                (mysql_url_for(&name), Some(name))
            }
        };
        Server::spawn(backend, dir, &rewrite(&db_url), mysql_db, config, None)
    }

    /// A cluster node: a server on the existing MySQL database `db_url` (not dropped with the
    /// node) that scales out over `redis_url`.
    pub fn start_node(db_url: &str, config: &Config, redis_url: &str) -> Server {
        Server::spawn(Backend::Mysql, server_dir(), db_url, None, config, Some(redis_url))
    }

    /// Spawns the binary and waits until `/health` says 200.
    fn spawn(
        backend: Backend,
        dir: PathBuf,
        db_url: &str,
        mysql_db: Option<String>,
        config: &Config,
        redis_url: Option<&str>,
    ) -> Server {
        let config_path = dir.join("herald.toml");
        std::fs::write(&config_path, config.render()).expect("write herald.toml");
        let log = File::create(dir.join("server.log")).expect("create server.log");
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
        command
            .arg("--config")
            .arg(&config_path)
            .env("HERALD_BIND", format!("127.0.0.1:{port}"))
            .env("HERALD_DATABASE_URL", db_url)
            .env("HERALD_DEV", "1")
            .env("HERALD_REACTORS", "2")
            .env(
                "RUST_LOG",
                std::env::var("HERALD_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env_remove("HERALD_JWT_SECRET")
            .env_remove("HERALD_REDIS_URL");
        if let Some(url) = redis_url {
            command.env("HERALD_REDIS_URL", url);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn target/debug/herald");
        let server = Server {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            backend,
            child: Mutex::new(child),
            dir,
            mysql_db,
        };
        server.wait_ready();
        server
    }

    fn child(&self) -> std::sync::MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let exited = self.child().try_wait();
            if let Ok(Some(status)) = exited {
                panic!(
                    "herald exited during start-up ({status}) on {}:\n{}",
                    self.backend.label(),
                    self.log_tail(60)
                );
            }
            if let Ok(r) = self.try_request(&Request::get("/health")) {
                if r.status == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "herald did not answer GET /health with 200 within {STARTUP_TIMEOUT:?} on {}:\n{}",
                self.backend.label(),
                self.log_tail(60)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last `lines` lines the server logged.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(self.dir.join("server.log")) {
            let _ = f.read_to_string(&mut text);
        }
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `sqlite` or `mysql`, for messages.
    pub fn label(&self) -> &'static str {
        self.backend.label()
    }

    /// One request on a fresh connection.
    pub fn try_request(&self, req: &Request) -> std::io::Result<Response> {
        let mut conn = super::http::Conn::open(self.addr)?;
        conn.send(req)
    }

    /// One request on a fresh connection; panics on I/O errors.
    #[track_caller]
    pub fn request(&self, req: &Request) -> Response {
        match self.try_request(req) {
            Ok(r) => r,
            Err(e) => panic!("{} {} on {}: {e}", req.method, req.target, self.label()),
        }
    }

    /// `GET path` with an optional bearer token.
    #[track_caller]
    pub fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = Request::get(path);
        if let Some(t) = token {
            req = req.bearer(t);
        }
        self.request(&req)
    }

    /// `POST path` with a JSON body and an optional bearer token.
    #[track_caller]
    pub fn post_json(&self, path: &str, token: Option<&str>, body: &serde_json::Value) -> Response {
        let mut req = Request::post(path).json(body);
        if let Some(t) = token {
            req = req.bearer(t);
        }
        self.request(&req)
    }

    /// Asserts that a fresh connection still gets `GET /health` 200 (after a bad request, say).
    #[track_caller]
    pub fn assert_healthy(&self, after: &str) {
        let r = self
            .try_request(&Request::get("/health"))
            .unwrap_or_else(|e| panic!("GET /health failed after {after}: {e}"));
        assert_eq!(r.status, 200, "GET /health after {after}: {}", r.text());
    }

    /// The `/metrics` text.
    #[track_caller]
    pub fn metrics(&self) -> String {
        let r = self.get("/metrics", None);
        assert_eq!(r.status, 200, "GET /metrics: {}", r.text());
        r.text()
    }
}

impl Server {
    /// Kills the process at once (SIGKILL), as a crashed node.
    pub fn kill(&self) {
        let mut child = self.child();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit; its exit status, or
    /// `None` when it is still running.
    pub fn terminate(&self, timeout: Duration) -> Option<ExitStatus> {
        let pid = self.child().id().to_string();
        let _ = Command::new("kill")
            .args(["-TERM", &pid])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child().try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.terminate(Duration::from_secs(3)).is_none() {
            let _ = self.child().kill();
        }
        let _ = self.child().wait();
        if let Some(db) = &self.mysql_db {
            if let Ok(mut admin) = mysql_admin() {
                let _ = admin.query_drop(format!("DROP DATABASE IF EXISTS {db}"));
            }
        }
        if std::thread::panicking() {
            eprintln!("server log kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
