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
use herald::reactor::{bind_listener, Reactor, ReactorParts};
use herald::shared::Shared;
use herald::store::pool::{OnReady, StorePool};
use herald::store::{open_backend, redact, StoreError, StoreUrl};

const USAGE: &str = "usage: herald [--config PATH] [migrate | user add NAME]\n\
  (no command)     serve HTTP, STOMP over WebSocket (/ws/chat) and SSE (/notifications/stream)\n\
  migrate          create or update the database schema, then exit\n\
  user add NAME    create a user; the password is read from the first line of stdin\n\
environment: HERALD_BIND, HERALD_REACTORS, HERALD_DATABASE_URL, HERALD_JWT_SECRET, HERALD_DEV,\n\
  HERALD_REDIS_URL (redis://host:port: scale out over several nodes on one MySQL database), RUST_LOG";

enum Command {
    Serve,
    Migrate,
    UserAdd(String),
}

fn parse_args(args: Vec<String>) -> Result<(Option<PathBuf>, Command), String> {
    let mut config = None;
    let mut rest = Vec::new();
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--config" | "-c" => config = Some(PathBuf::from(iter.next().ok_or("--config needs a path")?)),
            "--help" | "-h" => return Err(String::new()),
            "--version" | "-V" => {
                println!("herald {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            s if s.starts_with("--config=") => config = Some(PathBuf::from(&s["--config=".len()..])),
            _ => rest.push(arg),
        }
    }
    let command = match rest.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] | ["serve"] => Command::Serve,
        ["migrate"] => Command::Migrate,
        ["user", "add", name] => Command::UserAdd((*name).to_string()),
        other => return Err(format!("unknown command: {}", other.join(" "))),
    };
    Ok((config, command))
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

fn main() -> ExitCode {
    bound_allocator_retention();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let (config_path, command) = match parse_args(std::env::args().skip(1).collect()) {
        Ok(parsed) => parsed,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("herald: {e}");
            }
            eprintln!("{USAGE}");
            return if e.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    let config = match Config::load(config_path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("herald: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Serve => serve(config),
        Command::Migrate => migrate(&config),
        Command::UserAdd(name) => add_user(&config, &name),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("herald: {e}");
            ExitCode::FAILURE
        }
    }
}

fn migrate(config: &Config) -> Result<(), String> {
    let mut db = open_backend(&config.database.url).map_err(|e| e.to_string())?;
    db.migrate().map_err(|e| e.to_string())?;
    if config.dev {
        seed_dev_users(db.as_mut()).map_err(|e| e.to_string())?;
    }
    println!("schema of {} is up to date", redact(&config.database.url));
    Ok(())
}

fn add_user(config: &Config, name: &str) -> Result<(), String> {
    validate::username(name).map_err(|e| format!("username: {e}"))?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading the password from stdin: {e}"))?;
    let pass = line.trim_end_matches(['\r', '\n']);
    validate::password(pass).map_err(|e| format!("password: {e}"))?;
    let mut db = open_backend(&config.database.url).map_err(|e| e.to_string())?;
    db.migrate().map_err(|e| e.to_string())?;
    let hash = password::hash_password(pass).map_err(|e| e.to_string())?;
    match db.create_user(name, &hash, herald::clock::now_ms()) {
        Ok(user) => {
            println!("created user {} (id {})", user.username, user.id);
            Ok(())
        }
        Err(StoreError::Conflict) => Err(format!("user {name} already exists")),
        Err(e) => Err(e.to_string()),
    }
}

fn serve(config: Config) -> Result<(), String> {
    let addr: std::net::SocketAddr = config
        .server
        .bind
        .parse()
        .map_err(|e| format!("server.bind {:?}: {e}", config.server.bind))?;
    let store_url = StoreUrl::parse(&config.database.url).map_err(|e| e.to_string())?;
    let reactors = config.reactor_count().clamp(1, Bus::MAX_REACTORS);
    if config.dev {
        log::warn!("dev mode: demo users are seeded and the dev JWT secret is allowed; set HERALD_DEV=0 in production");
    }

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
