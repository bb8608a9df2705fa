//! `herald` — serve, migrate, or add a user.
//!
//! ```text
//! herald [--config PATH]                 serve (default ./config/herald.toml when present)
//! herald [--config PATH] migrate         create or update the schema, then exit
//! herald [--config PATH] user add NAME   create a user; the password is read from stdin
//! ```

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::api::auth::seed_dev_users;
use herald::auth::{password, validate};
use herald::bus::cluster::Cluster;
use herald::bus::{self, Bus, Outlet};
use herald::chat::ChatWriter;
use herald::config::Config;
use herald::metrics::Metrics;
use herald::reactor::{bind_listener, ensure_port_free, Reactor, ReactorParts};
use herald::shared::Shared;
use herald::store::pool::{OnReady, StorePool};
use herald::store::{StoreError, StoreUrl};

const USAGE: &str = "usage: herald [--config PATH] [migrate | user add NAME]
  (no command)     serve HTTP, STOMP over WebSocket (/ws/chat) and SSE (/notifications/stream)
  migrate          create or update the database schema, then exit
  user add NAME    create a user; the password is read from the first line of stdin
  --help, --version
environment: HERALD_BIND, HERALD_REACTORS, HERALD_DATABASE_URL, HERALD_JWT_SECRET, HERALD_DEV,
  HERALD_REDIS_URL (redis://host:port: scale out over several nodes on one MySQL database), RUST_LOG";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Invocation {
    Help,
    Version,
    Run(Option<PathBuf>, Command),
}

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Serve,
    Migrate,
    UserAdd(String),
}

fn parse_args(args: Vec<String>) -> Result<Invocation, String> {
    let mut config = None;
    let mut rest = Vec::new();
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--config" | "-c" => config = Some(PathBuf::from(iter.next().ok_or("--config needs a path")?)),
            "--help" | "-h" => return Ok(Invocation::Help),
            "--version" | "-V" => return Ok(Invocation::Version),
            s if s.starts_with("--config=") => config = Some(PathBuf::from(&s["--config=".len()..])),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ => rest.push(arg),
        }
    }
    let command = match rest.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] | ["serve"] => Command::Serve,
        ["migrate"] => Command::Migrate,
        ["user", "add", name] => Command::UserAdd((*name).to_string()),
        ["user", "add"] => return Err("user add needs the user's NAME (the password comes from stdin)".into()),
        ["user", ..] => {
            return Err(format!(
                "unknown command: {} (did you mean: user add NAME?)",
                rest.join(" ")
            ))
        }
        other => return Err(format!("unknown command: {}", other.join(" "))),
    };
    Ok(Invocation::Run(config, command))
}

/// Large allocations (argon2id's ~19 MiB block) get their own mapping, returned to the system on
/// free, instead of glibc's default of keeping them in a per-thread arena once one was freed.
fn bound_allocator_retention() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes an allocator tunable; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

/// Why a command failed, with the exit status it deserves.
enum Failure {
    /// A bad command line or configuration: exit 2.
    Usage(String),
    /// The command ran and failed: exit 1.
    Failed(String),
}

fn main() -> ExitCode {
    bound_allocator_retention();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let (config_path, command) = match parse_args(std::env::args().skip(1).collect()) {
        Ok(Invocation::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Version) => {
            println!("herald {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Run(path, command)) => (path, command),
        Err(e) => {
            eprintln!("herald: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = Config::load(config_path.as_deref())
        .map_err(|e| Failure::Usage(e.to_string()))
        .and_then(|config| match command {
            Command::Serve => serve(config),
            Command::Migrate => migrate(&config).map_err(Failure::Failed),
            Command::UserAdd(name) => add_user(&config, &name).map_err(Failure::Failed),
        });
    // Errors are said once, on stderr (the log goes there too, so they are not logged again).
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("herald: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(e)) => {
            eprintln!("herald: {e}");
            ExitCode::FAILURE
        }
    }
}

fn migrate(config: &Config) -> Result<(), String> {
    let url = StoreUrl::parse(&config.database.url).map_err(|e| e.to_string())?;
    let mut db = url.open().map_err(|e| e.to_string())?;
    let migrated = db.migrate().map_err(|e| e.to_string())?;
    if config.dev {
        seed_dev_users(db.as_mut()).map_err(|e| e.to_string())?;
    }
    if migrated.from == migrated.to {
        println!("schema of {url} is up to date (version {})", migrated.to);
    } else {
        println!(
            "schema of {url} migrated from version {} to {}",
            migrated.from, migrated.to
        );
    }
    Ok(())
}

/// The password on the first line of `input` (its line ending removed).
fn password_line(input: &mut impl BufRead) -> Result<String, String> {
    let mut line = String::new();
    let read = input
        .read_line(&mut line)
        .map_err(|e| format!("reading the password from stdin: {e}"))?;
    let pass = line.trim_end_matches(['\r', '\n']);
    if read == 0 || pass.is_empty() {
        return Err(
            "no password on stdin: give it as the first line, e.g. printf '%s\\n' \"$PASS\" | herald user add NAME"
                .into(),
        );
    }
    Ok(pass.to_owned())
}

fn add_user(config: &Config, name: &str) -> Result<(), String> {
    validate::username(name).map_err(|e| format!("username: {e}"))?;
    let pass = password_line(&mut std::io::stdin().lock())?;
    validate::password(&pass).map_err(|e| format!("password: {e}"))?;
    let mut db = StoreUrl::parse(&config.database.url)
        .and_then(|url| url.open())
        .map_err(|e| e.to_string())?;
    db.migrate().map_err(|e| e.to_string())?;
    let hash = password::hash_password(&pass).map_err(|e| e.to_string())?;
    match db.create_user(name, &hash, herald::clock::now_ms()) {
        Ok(user) => {
            println!("created user {} (id {})", user.username, user.id);
            Ok(())
        }
        Err(StoreError::Conflict) => Err(format!("user {name} already exists")),
        Err(e) => Err(e.to_string()),
    }
}

fn serve(config: Config) -> Result<(), Failure> {
    config.validate().map_err(|e| Failure::Usage(e.to_string()))?;
    let store_url = StoreUrl::parse(&config.database.url).map_err(|e| Failure::Usage(e.to_string()))?;
    run_server(config, store_url).map_err(Failure::Failed)
}

fn run_server(config: Config, store_url: StoreUrl) -> Result<(), String> {
    let addr: std::net::SocketAddr = config
        .server
        .bind
        .parse()
        .map_err(|e| format!("server.bind {:?}: {e}", config.server.bind))?;
    let reactors = config.reactor_count().clamp(1, Bus::MAX_REACTORS);
    if config.dev {
        log::warn!("dev mode: demo users are seeded and the dev JWT secret is allowed; set HERALD_DEV=0 in production");
    }

    ensure_port_free(addr).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => format!("binding {addr}: address in use (is another server running on it?)"),
        _ => format!("binding {addr}: {e}"),
    })?;
    // Polls and wakers first: the bus needs every reactor's waker before any worker starts.
    let mut polls = Vec::with_capacity(reactors);
    let mut wakers = Vec::with_capacity(reactors);
    for _ in 0..reactors {
        let poll = mio::Poll::new().map_err(|e| format!("creating a poll: {e}"))?;
        let waker = mio::Waker::new(poll.registry(), mio::Token(usize::MAX)).map_err(|e| format!("waker: {e}"))?;
        polls.push(poll);
        wakers.push(waker);
    }
    let (handles, inboxes) = bus::inboxes(wakers);
    let mut parts = Vec::with_capacity(reactors);
    for (id, (poll, inbox)) in polls.into_iter().zip(inboxes).enumerate() {
        let listener = bind_listener(addr).map_err(|e| format!("binding {addr}: {e}"))?;
        parts.push(ReactorParts {
            id,
            poll,
            inbox,
            listener,
        });
    }
    let metrics = Arc::new(Metrics::default());
    let mut cluster = config
        .cluster
        .enabled()
        .then(|| Cluster::new(&config.cluster, Arc::clone(&metrics)));
    let outlet = match &cluster {
        Some(c) => Outlet::Cluster(c.publisher()),
        None => Outlet::Local,
    };
    let bus = Arc::new(Bus::configured(handles, outlet, &config.cluster, Arc::clone(&metrics)));
    let on_ready: Option<OnReady> = config.dev.then(|| Box::new(seed_dev_users) as OnReady);
    let db = &config.database;
    let store = StorePool::start(store_url.clone(), db, on_ready, Arc::clone(&metrics));
    bus::sync::start(&bus, &store, &config.cluster, cluster.as_ref().map(Cluster::sync_side));
    if let Some(c) = cluster.as_mut() {
        c.start(&bus)?;
    }
    // SQLite has one writer lock: `max_writers` keeps it at one shard (see `StoreKind`).
    let shards = db.chat_shards.min(store_url.max_writers());
    let chat = ChatWriter::start(&store, &bus, shards, db.max_batch, db.queue_capacity);
    log::info!(
        "herald {} listening on {addr} with {reactors} reactors, store {store_url} ({} workers, {} chat shards)",
        env!("CARGO_PKG_VERSION"),
        db.workers,
        chat.shard_count()
    );
    let shared = Arc::new(Shared::new(config, store, chat, bus, metrics));

    let mut threads = Vec::with_capacity(reactors);
    for p in parts {
        let id = p.id;
        let shared_for_reactor = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("herald-reactor-{id}"))
            .spawn(move || {
                let shared = shared_for_reactor;
                let ran = match Reactor::new(p, Arc::clone(&shared)) {
                    Ok(reactor) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reactor.run())).is_ok(),
                    Err(e) => {
                        log::error!("reactor {id} failed to start: {e}");
                        false
                    }
                };
                if !ran {
                    // A server with a dead reactor would half-serve: stop, so a supervisor restarts it.
                    log::error!("reactor {id} stopped unexpectedly: shutting the server down");
                    shared.shutdown.store(true, Ordering::Release);
                }
                ran
            })
            .map_err(|e| format!("spawning reactor {id}: {e}"))?;
        threads.push(thread);
    }

    wait_for_signal(&shared)?;
    let deadline = Instant::now() + Duration::from_millis(shared.config.server.shutdown_deadline_ms);
    log::info!(
        "shutting down (deadline {} ms)",
        shared.config.server.shutdown_deadline_ms
    );
    shared.shutdown.store(true, Ordering::Release);
    shared.bus.wake_all();
    let mut all_ran = true;
    for t in threads {
        all_ran &= t.join().unwrap_or(false);
    }
    shared.pool.shutdown(deadline);
    if let Some(c) = cluster.as_mut() {
        c.shutdown(deadline);
    }
    if !all_ran {
        return Err("a reactor failed; see the log above".into());
    }
    log::info!("bye");
    Ok(())
}

/// Blocks until SIGTERM or SIGINT.
fn wait_for_signal(shared: &Shared) -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [SIGTERM, SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&flag)).map_err(|e| format!("signal handler: {e}"))?;
    }
    while !flag.load(Ordering::Acquire) && !shared.shutdown.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<Invocation, String> {
        parse_args(line.split_whitespace().map(str::to_owned).collect())
    }

    #[test]
    fn commands_and_options() {
        assert_eq!(args(""), Ok(Invocation::Run(None, Command::Serve)));
        assert_eq!(args("--help"), Ok(Invocation::Help));
        assert_eq!(args("migrate -V"), Ok(Invocation::Version));
        assert_eq!(
            args("--config c.toml user add dave"),
            Ok(Invocation::Run(Some("c.toml".into()), Command::UserAdd("dave".into())))
        );
        assert_eq!(
            args("--config=x migrate"),
            Ok(Invocation::Run(Some("x".into()), Command::Migrate))
        );
    }

    #[test]
    fn mistakes_say_what_is_missing() {
        assert!(args("user add").unwrap_err().contains("needs the user's NAME"));
        assert!(args("user del bob").unwrap_err().contains("did you mean"));
        assert!(args("frobnicate").unwrap_err().contains("unknown command: frobnicate"));
        assert!(args("--verbose").unwrap_err().contains("unknown option --verbose"));
        assert!(args("--config").unwrap_err().contains("needs a path"));
    }

    #[test]
    fn the_password_is_the_first_line() {
        assert_eq!(
            password_line(&mut &b"secret-pass\r\nmore"[..]),
            Ok("secret-pass".into())
        );
        assert!(password_line(&mut &b""[..])
            .unwrap_err()
            .contains("no password on stdin"));
        assert!(password_line(&mut &b"\n"[..])
            .unwrap_err()
            .contains("no password on stdin"));
    }
}
