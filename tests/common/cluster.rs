//! Several Herald nodes on one MariaDB database with their own `redis-server` (SPEC §6): the
//! harness starts Redis on a free port (`--save ''`, so it can be killed and restarted at will),
//! a fresh database, and the nodes; a RESP-aware TCP proxy can stand between a node and Redis to
//! lose one PUBLISH on purpose.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::server::{Config, Server, SharedDatabase};

/// Why the cluster tests cannot run here (skipped, or a failure with `CI=true`).
fn unavailable(what: &str) -> Option<()> {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{what} and CI=true: the cluster tests must run"
    );
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !! SKIP: {what}: the cluster tests are SKIPPED.\n\
         !! Install redis-server and start MariaDB (scripts/test.sh does both); CI=true makes this a failure.\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    None
}

fn redis_server_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("an ephemeral port")
}

/// A `redis-server` of the test's own, on a free loopback port, persisting nothing.
pub struct Redis {
    pub port: u16,
    binary: PathBuf,
    dir: PathBuf,
    child: Mutex<Option<Child>>,
}

impl Redis {
    /// Starts one; `None` (skipped) when `redis-server` is not installed and CI is not set.
    pub fn start() -> Option<Redis> {
        let Some(binary) = redis_server_binary() else {
            unavailable("redis-server is not installed")?;
            return None;
        };
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("herald-redis-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("redis dir");
        let redis = Redis {
            port: free_port(),
            binary,
            dir,
            child: Mutex::new(None),
        };
        redis.restart();
        Some(redis)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kills the server (SIGKILL): every client connection drops at once.
    pub fn kill(&self) {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(mut c) = child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server (again) on the same port, and waits until it answers PING.
    pub fn restart(&self) {
        self.kill();
        let log = std::fs::File::create(self.dir.join(format!("redis-{}.log", crate::common::unique("r", 20))))
            .expect("redis log");
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn redis-server");
        *self.child.lock().unwrap_or_else(PoisonError::into_inner) = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it answers PING.
    pub fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Nodes on one database with one Redis.
pub struct Cluster {
    pub redis: Redis,
    pub db: SharedDatabase,
    pub nodes: Vec<Server>,
    pub config: Config,
}

impl Cluster {
    /// `nodes` nodes on a fresh MariaDB database, each with `config` and the cluster's Redis;
    /// `None` (skipped) when MariaDB or redis-server is missing and CI is not set.
    pub fn start(nodes: usize, config: &Config) -> Option<Cluster> {
        let redis = Redis::start()?;
        let Some(db) = SharedDatabase::create() else {
            unavailable("MariaDB is unreachable")?;
            return None;
        };
        let mut cluster = Cluster {
            redis,
            db,
            nodes: Vec::new(),
            config: config.clone(),
        };
        // The first node migrates alone; the others start together.
        cluster.add_node();
        let url = cluster.redis.url();
        let more: Vec<Server> = std::thread::scope(|scope| {
            let handles: Vec<_> = (1..nodes)
                .map(|_| {
                    let (db, config, url) = (&cluster.db, &cluster.config, url.clone());
                    scope.spawn(move || Server::start_node(&db.url, config, &url))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| panic!("a node failed to start")))
                .collect()
        });
        cluster.nodes.extend(more);
        Some(cluster)
    }

    /// Starts one more node with the cluster's Redis URL.
    pub fn add_node(&mut self) -> &Server {
        let url = self.redis.url();
        self.add_node_with_redis(&url)
    }

    /// Starts one more node that reaches Redis at `redis_url` (a proxy, say).
    pub fn add_node_with_redis(&mut self, redis_url: &str) -> &Server {
        let node = Server::start_node(&self.db.url, &self.config, redis_url);
        self.nodes.push(node);
        self.nodes.last().expect("just pushed")
    }
}

/// A TCP proxy to Redis that forwards everything, except that once armed it sends the next
/// PUBLISH to a given channel to another channel instead: nobody receives it, Redis answers as
/// usual (0 receivers), and the publishing node does not notice — a lost publish.
pub struct LosingProxy {
    pub port: u16,
    armed: Arc<Mutex<Option<String>>>,
    lost: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl LosingProxy {
    /// A proxy to `upstream`.
    pub fn start(upstream: SocketAddr) -> LosingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let armed: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let lost = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, l, s) = (Arc::clone(&armed), Arc::clone(&lost), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !s.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(upstream) else {
                            continue;
                        };
                        let (a, l) = (Arc::clone(&a), Arc::clone(&l));
                        let (c2, s2) = match (client.try_clone(), server.try_clone()) {
                            (Ok(c), Ok(s)) => (c, s),
                            _ => continue,
                        };
                        std::thread::spawn(move || copy(s2, c2));
                        std::thread::spawn(move || forward_commands(client, server, &a, &l));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        LosingProxy {
            port,
            armed,
            lost,
            stop,
        }
    }

    /// `redis://127.0.0.1:<proxy port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Loses the next PUBLISH to `channel`.
    pub fn lose_next_publish_to(&self, channel: &str) {
        *self.armed.lock().unwrap_or_else(PoisonError::into_inner) = Some(channel.to_owned());
    }

    /// How many PUBLISHes were lost so far.
    pub fn lost(&self) -> usize {
        self.lost.load(Ordering::Acquire)
    }
}

impl Drop for LosingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// One RESP array of bulk strings from the front of `buf`: its parts and its length.
fn parse_command(buf: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let end = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
        Some((&buf[at..end], end + 2))
    }
    let (head, mut at) = line(buf, 0)?;
    let count: usize = std::str::from_utf8(head.strip_prefix(b"*")?).ok()?.parse().ok()?;
    let mut parts = Vec::with_capacity(count);
    for _ in 0..count {
        let (len, next) = line(buf, at)?;
        let len: usize = std::str::from_utf8(len.strip_prefix(b"$")?).ok()?.parse().ok()?;
        if buf.len() < next + len + 2 {
            return None;
        }
        parts.push(buf[next..next + len].to_vec());
        at = next + len + 2;
    }
    Some((parts, at))
}

fn encode_command(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for p in parts {
        out.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn forward_commands(mut client: TcpStream, mut server: TcpStream, armed: &Mutex<Option<String>>, lost: &AtomicUsize) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match client.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut out = Vec::new();
        while let Some((mut parts, used)) = parse_command(&buf) {
            buf.drain(..used);
            let is_publish = parts.first().is_some_and(|c| c.eq_ignore_ascii_case(b"PUBLISH"));
            if is_publish && parts.len() == 3 {
                let mut target = armed.lock().unwrap_or_else(PoisonError::into_inner);
                if target.as_deref().map(str::as_bytes) == Some(&parts[1][..]) {
                    *target = None;
                    parts[1] = b"herald-test:lost".to_vec();
                    lost.fetch_add(1, Ordering::AcqRel);
                }
            }
            out.extend_from_slice(&encode_command(&parts));
        }
        if !buf.is_empty() && !buf.starts_with(b"*") {
            // Not RESP arrays (an inline command): pass it on untouched.
            out.append(&mut buf);
        }
        if server.write_all(&out).is_err() {
            break;
        }
    }
    let _ = server.shutdown(Shutdown::Both);
    let _ = client.shutdown(Shutdown::Both);
}
