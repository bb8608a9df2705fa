//! The blocking side of Herald: worker threads that own store connections, fed over bounded
//! crossbeam channels. Reactors never wait on them; results come back through the [`Hub`].
//!
//! - General workers take any job (a closure) from one shared queue: REST use cases, argon2.
//! - Chat shards each own the rooms that hash to them, so one room has one commit order. A shard
//!   drains up to `max_batch` SENDs, commits them in one transaction, publishes the fan-out, then
//!   acknowledges the senders — nothing is broadcast or receipted before it is durable.
//! - A monitor thread migrates and seeds at start-up, then pings; `/health` reads its verdict and
//!   every worker drops its connection on `Unavailable` so the pool heals when the store returns.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::backend::{Backend, StoreError};
use super::model::NewChatMessage;
use super::url::{open_backend, redact};
use crate::auth::password;
use crate::config::DatabaseConfig;
use crate::hub::{ChatAck, ChatOutcome, ConnRef, Hub, ReactorMsg};
use crate::metrics::Metrics;
use crate::views;

/// A unit of work for a general worker.
pub type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// The queue is full (or the pool is stopping): answer 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// A validated SEND on its way to the shard that owns its room.
pub struct ChatJob {
    pub message: NewChatMessage,
    pub origin: ConnRef,
    pub receipt: Option<Box<str>>,
}

/// Users seeded in dev mode so that the seed's Postman calls work at once.
pub const DEV_USERS: [(&str, &str); 3] = [("testuser", "testpass"), ("alice", "alicepass"), ("bob", "bobpass")];

/// State shared by every worker of the pool.
struct Common {
    url: String,
    metrics: Arc<Metrics>,
    healthy: AtomicBool,
    ready: AtomicBool,
    stopping: AtomicBool,
    /// SENDs queued or being committed whose senders have not been answered yet.
    chat_in_flight: AtomicUsize,
    /// Bumped each time the store comes back after an outage: connections opened before it are
    /// presumed dead and reopened before use, so no request fails on a stale connection.
    epoch: AtomicUsize,
}

/// One worker thread's store connection, opened on first use and reopened after a failure.
pub struct Worker {
    common: Arc<Common>,
    backend: Option<Box<dyn Backend>>,
    /// The store epoch when `backend` was opened.
    epoch: usize,
}

impl Worker {
    fn new(common: Arc<Common>) -> Worker {
        Worker {
            common,
            backend: None,
            epoch: 0,
        }
    }

    /// Runs `f` on this worker's connection, timing it; `Unavailable` drops the connection and
    /// marks the store down until the monitor sees it again.
    pub fn with<T>(&mut self, f: impl FnOnce(&mut dyn Backend) -> Result<T, StoreError>) -> Result<T, StoreError> {
        if !self.common.ready.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("store not migrated yet".into()));
        }
        let started = Instant::now();
        let epoch = self.common.epoch.load(Ordering::Acquire);
        if self.epoch != epoch {
            self.backend = None;
            self.epoch = epoch;
        }
        let result = match self.backend.as_mut() {
            Some(db) => f(db.as_mut()),
            None => match open_backend(&self.common.url) {
                Ok(db) => f(self.backend.insert(db).as_mut()),
                Err(e) => Err(e),
            },
        };
        self.common.metrics.observe_store_latency(started.elapsed());
        if let Err(e) = &result {
            if !matches!(e, StoreError::Conflict) {
                self.common.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
            }
            match e {
                StoreError::Unavailable(why) => {
                    log::warn!("store unavailable: {why}");
                    self.backend = None;
                    self.common.healthy.store(false, Ordering::Release);
                }
                StoreError::Other(why) => log::error!("store error: {why}"),
                StoreError::Conflict => {}
            }
        }
        result
    }
}

/// Handles to the worker threads and their queues.
pub struct StorePool {
    common: Arc<Common>,
    general: Sender<Job>,
    /// Jobs dominated by argon2 (login, signup), on threads at a lower CPU priority.
    hashing: Sender<Job>,
    shards: Vec<Sender<ChatJob>>,
    threads: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl StorePool {
    /// Starts the monitor, `cfg.workers` general workers and `cfg.chat_shards` chat shards.
    pub fn start(cfg: &DatabaseConfig, seed_dev_users: bool, hub: Arc<Hub>, metrics: Arc<Metrics>) -> StorePool {
        let common = Arc::new(Common {
            url: cfg.url.clone(),
            metrics,
            healthy: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            chat_in_flight: AtomicUsize::new(0),
            epoch: AtomicUsize::new(0),
        });
        let mut threads = Vec::new();
        let (general, general_rx) = crossbeam_channel::bounded::<Job>(cfg.queue_capacity.max(1));
        for i in 0..cfg.workers.max(1) {
            let rx = general_rx.clone();
            let common = Arc::clone(&common);
            threads.push(spawn(format!("herald-worker-{i}"), move || {
                general_loop(rx, Worker::new(common))
            }));
        }
        // argon2 keeps a core busy for tens of milliseconds per call: on threads of their own that
        // run only when a core is otherwise idle, a burst of logins cannot delay the reactors.
        let (hashing, hashing_rx) = crossbeam_channel::bounded::<Job>(cfg.queue_capacity.max(1));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for i in 0..cores {
            let rx = hashing_rx.clone();
            let common = Arc::clone(&common);
            // Only these threads hash, so the allocator keeps at most one argon2 block (~19 MiB)
            // per core for reuse; handing it back after each hash (malloc_trim) measured slower.
            threads.push(spawn(format!("herald-hash-{i}"), move || {
                lower_priority();
                general_loop(rx, Worker::new(common))
            }));
        }
        let mut shards = Vec::new();
        // SQLite has one writer lock: a second shard would only wait on it (measured: p99
        // SEND→RECEIPT 563 ms with 2 shards vs 8.4 ms with 1 at the same throughput).
        let shard_count = if cfg.url.starts_with("sqlite://") {
            1
        } else {
            cfg.chat_shards.max(1)
        };
        for i in 0..shard_count {
            let (tx, rx) = crossbeam_channel::bounded::<ChatJob>(cfg.queue_capacity.max(1));
            shards.push(tx);
            let (common, hub, max_batch) = (Arc::clone(&common), Arc::clone(&hub), cfg.max_batch.max(1));
            threads.push(spawn(format!("herald-chat-{i}"), move || {
                chat_loop(rx, Worker::new(common), &hub, max_batch)
            }));
        }
        let monitor_common = Arc::clone(&common);
        threads.push(spawn("herald-store-monitor".into(), move || {
            monitor_loop(&monitor_common, seed_dev_users)
        }));
        StorePool {
            common,
            general,
            hashing,
            shards,
            threads: std::sync::Mutex::new(threads),
        }
    }

    /// Queues without waiting; a full (or closed) queue is counted and refused.
    fn offer<T>(&self, queue: &Sender<T>, item: T) -> Result<(), Busy> {
        queue.try_send(item).map_err(|_| {
            self.common
                .metrics
                .store_queue_rejections
                .fetch_add(1, Ordering::Relaxed);
            Busy
        })
    }

    /// Queues a job for a general worker.
    pub fn submit(&self, job: Job) -> Result<(), Busy> {
        self.offer(&self.general, job)
    }

    /// Queues a job that hashes a password (login, signup) on the low-priority threads.
    pub fn submit_hashing(&self, job: Job) -> Result<(), Busy> {
        self.offer(&self.hashing, job)
    }

    /// Queues a SEND on the shard that owns its room.
    pub fn submit_chat(&self, job: ChatJob) -> Result<(), Busy> {
        let mut hasher = DefaultHasher::new();
        job.message.room_id.hash(&mut hasher);
        let shard = (hasher.finish() % self.shards.len() as u64) as usize;
        self.common.chat_in_flight.fetch_add(1, Ordering::AcqRel);
        let queued = self.offer(&self.shards[shard], job);
        if queued.is_err() {
            self.common.chat_in_flight.fetch_sub(1, Ordering::AcqRel);
        }
        queued
    }

    /// Whether the store answered the last ping and the schema is in place.
    pub fn is_up(&self) -> bool {
        self.common.ready.load(Ordering::Acquire) && self.common.healthy.load(Ordering::Acquire)
    }

    /// SENDs accepted whose senders have not been answered yet (drained before shutdown).
    pub fn chat_in_flight(&self) -> usize {
        self.common.chat_in_flight.load(Ordering::Acquire)
    }

    /// Jobs waiting in all queues.
    pub fn queue_depth(&self) -> usize {
        self.general.len() + self.hashing.len() + self.shards.iter().map(Sender::len).sum::<usize>()
    }

    /// Lets queued work finish, then joins every thread (bounded by `deadline`).
    pub fn shutdown(&self, deadline: Instant) {
        self.common.stopping.store(true, Ordering::Release);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for t in threads {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// Puts the calling thread in `SCHED_IDLE` (it runs only on a core nobody else wants), or at
/// nice 19 where that is refused. Linux applies both to the calling thread only.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain integers and a zeroed `sched_param` that lives across the call.
    unsafe {
        let param: libc::sched_param = std::mem::zeroed();
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            if libc::setpriority(libc::PRIO_PROCESS, tid, 19) != 0 {
                log::warn!("could not lower the priority of a hashing thread");
            }
        }
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    match std::thread::Builder::new().name(name.clone()).spawn(f) {
        Ok(handle) => handle,
        Err(e) => panic!("cannot spawn thread {name}: {e}"),
    }
}

/// Waits for the next job; `None` once the pool is stopping and the queue is empty.
fn next<T>(rx: &Receiver<T>, common: &Common) -> Option<T> {
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(job) => return Some(job),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) if !common.stopping.load(Ordering::Acquire) => {}
            Err(_) => return None,
        }
    }
}

fn general_loop(rx: Receiver<Job>, mut worker: Worker) {
    let common = Arc::clone(&worker.common);
    while let Some(job) = next(&rx, &common) {
        job(&mut worker);
    }
}

fn chat_loop(rx: Receiver<ChatJob>, mut worker: Worker, hub: &Hub, max_batch: usize) {
    let mut batch: Vec<ChatJob> = Vec::with_capacity(max_batch);
    let mut messages: Vec<NewChatMessage> = Vec::with_capacity(max_batch);
    let common = Arc::clone(&worker.common);
    while let Some(first) = next(&rx, &common) {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        messages.clear();
        messages.extend(
            batch
                .iter_mut()
                .map(|j| std::mem::replace(&mut j.message, empty_message())),
        );
        let metrics = Arc::clone(&worker.common.metrics);
        let outcome = match worker.with(|db| db.commit_chat(&messages)) {
            Ok(committed) => {
                metrics
                    .chat_messages_committed
                    .fetch_add(committed.messages.len() as u64, Ordering::Relaxed);
                metrics.chat_batches_committed.fetch_add(1, Ordering::Relaxed);
                metrics
                    .notifications_created
                    .fetch_add(committed.notifications.len() as u64, Ordering::Relaxed);
                hub.publish_chat(committed.messages.iter().map(views::chat_event).collect());
                hub.publish_notifications(committed.notifications.iter().map(views::notification_event).collect());
                ChatOutcomeKind::Committed
            }
            Err(StoreError::Unavailable(_)) => ChatOutcomeKind::Unavailable,
            Err(_) => ChatOutcomeKind::Internal,
        };
        if outcome != ChatOutcomeKind::Committed {
            metrics
                .chat_messages_rejected
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        let mut acks: HashMap<usize, Vec<ChatAck>> = HashMap::new();
        let answered = batch.len();
        for job in batch.drain(..) {
            // Without a receipt a committed SEND needs no answer; a failure is always reported.
            if job.receipt.is_none() && outcome == ChatOutcomeKind::Committed {
                continue;
            }
            acks.entry(job.origin.reactor).or_default().push(ChatAck {
                token: job.origin.token,
                receipt: job.receipt,
                outcome: outcome.to_outcome(),
            });
        }
        for (reactor, acks) in acks {
            hub.send(reactor, ReactorMsg::ChatAcks(acks));
        }
        common.chat_in_flight.fetch_sub(answered, Ordering::AcqRel);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChatOutcomeKind {
    Committed,
    Unavailable,
    Internal,
}

impl ChatOutcomeKind {
    fn to_outcome(self) -> ChatOutcome {
        match self {
            ChatOutcomeKind::Committed => ChatOutcome::Committed,
            ChatOutcomeKind::Unavailable => ChatOutcome::Failed {
                code: "SERVICE_UNAVAILABLE",
                message: "메시지를 저장할 수 없습니다. 잠시 후 다시 시도하세요",
            },
            ChatOutcomeKind::Internal => ChatOutcome::Failed {
                code: "INTERNAL_ERROR",
                message: "서버 내부 오류가 발생했습니다",
            },
        }
    }
}

fn empty_message() -> NewChatMessage {
    NewChatMessage {
        room_id: String::new(),
        sender: String::new(),
        message: String::new(),
        sent_at_ms: 0,
        mentions: Vec::new(),
    }
}

/// Migrates (and seeds) once the store answers, then pings it every second.
fn monitor_loop(common: &Common, seed_dev_users: bool) {
    let mut db: Option<Box<dyn Backend>> = None;
    let mut last_error = String::new();
    while !common.stopping.load(Ordering::Acquire) {
        let result = match db.as_mut() {
            Some(conn) => conn.ping(),
            None => open_backend(&common.url).and_then(|mut conn| {
                if !common.ready.load(Ordering::Acquire) {
                    conn.migrate()?;
                    if seed_dev_users {
                        seed(conn.as_mut())?;
                    }
                    log::info!("store {} migrated and ready", redact(&common.url));
                    common.ready.store(true, Ordering::Release);
                }
                db = Some(conn);
                Ok(())
            }),
        };
        match result {
            Ok(()) => {
                if !common.healthy.swap(true, Ordering::AcqRel) {
                    // Back from an outage (or the first start): every older connection is suspect.
                    common.epoch.fetch_add(1, Ordering::AcqRel);
                    if !last_error.is_empty() {
                        log::info!("store {} is reachable again", redact(&common.url));
                    }
                }
                last_error.clear();
            }
            Err(e) => {
                db = None;
                common.healthy.store(false, Ordering::Release);
                let why = e.to_string();
                if why != last_error {
                    log::error!("store {} is down: {why}", redact(&common.url));
                    last_error = why;
                }
            }
        }
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until && !common.stopping.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Creates the demo users that do not exist yet (their passwords predate the length rule).
pub fn seed(db: &mut dyn Backend) -> Result<(), StoreError> {
    for (name, pass) in DEV_USERS {
        if db.user_exists(name)? {
            continue;
        }
        let hash = password::hash_password(pass).map_err(|e| StoreError::Other(e.to_string()))?;
        match db.create_user(name, &hash, crate::clock::now_ms()) {
            Ok(_) | Err(StoreError::Conflict) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
