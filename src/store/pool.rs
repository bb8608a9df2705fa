//! The blocking side of Herald: threads that own store connections, fed over bounded crossbeam
//! channels. Reactors never wait on them; the jobs themselves say where their results go.
//!
//! - General workers take any job (a closure) from one shared queue: REST use cases, replays.
//! - Hashing workers do the same for jobs dominated by argon2 (login, signup), at a low priority.
//! - Other long-lived store threads (the chat shards) are started through [`StorePool::spawn`], so
//!   that they share the store's health and are joined at shutdown like the rest.
//! - A monitor thread migrates (and runs the `on_ready` hook, e.g. seeding) once the store
//!   answers, then pings it; `/health` reads its verdict and every worker drops its connection on
//!   `Unavailable` so the pool heals when the store returns.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::backend::{Backend, StoreError};
use super::url::StoreUrl;
use crate::config::DatabaseConfig;
use crate::metrics::Metrics;

/// A unit of work for a general worker.
pub type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// The queue is full (or the pool is stopping): answer 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// What the monitor runs once the schema is in place (seeding the dev users, say).
pub type OnReady = Box<dyn Fn(&mut dyn Backend) -> Result<(), StoreError> + Send>;

/// State shared by every worker of the pool.
struct Common {
    url: StoreUrl,
    metrics: Arc<Metrics>,
    healthy: AtomicBool,
    ready: AtomicBool,
    /// Disconnected when the pool stops: wakes every thread waiting on it at once, so that no
    /// thread has to wake up periodically to see whether the pool stops.
    stop: Receiver<()>,
    /// Bumped each time the store comes back after an outage: connections opened before it are
    /// presumed dead and reopened before use, so no request fails on a stale connection.
    epoch: AtomicUsize,
}

impl Common {
    /// Whether the pool stops: its stop channel is disconnected.
    fn stopping(&self) -> bool {
        matches!(self.stop.try_recv(), Err(crossbeam_channel::TryRecvError::Disconnected))
    }
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

    /// Waits for the next job of `rx`; `None` once the pool is stopping and the queue is empty
    /// (or every sender of `rx` is gone).
    pub fn next<T>(&self, rx: &Receiver<T>) -> Option<T> {
        // Once stopped, the stop branch is always ready; a queued job is still taken first or
        // by `try_recv`, whichever branch is picked.
        crossbeam_channel::select! {
            recv(rx) -> job => job.ok(),
            recv(self.common.stop) -> _ => rx.try_recv().ok(),
        }
    }

    /// Disconnected once the pool stops: for threads that wait on other channels too, to add to
    /// their `select!`.
    pub fn stop_signal(&self) -> &Receiver<()> {
        &self.common.stop
    }

    /// Whether the pool is stopping (for threads that wait on something else than a job queue).
    pub fn stopping(&self) -> bool {
        self.common.stopping()
    }

    /// The process's counters (for threads that count what their jobs did).
    pub fn metrics(&self) -> &Metrics {
        &self.common.metrics
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
            None => match self.common.url.open() {
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
    threads: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// Dropped at shutdown, which disconnects [`Common::stop`].
    stop: std::sync::Mutex<Option<Sender<()>>>,
}

impl StorePool {
    /// Starts the monitor (which runs `on_ready` after migrating), `cfg.workers` general workers
    /// and one hashing worker per core.
    pub fn start(url: StoreUrl, cfg: &DatabaseConfig, on_ready: Option<OnReady>, metrics: Arc<Metrics>) -> StorePool {
        let (stop, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let common = Arc::new(Common {
            url,
            metrics,
            healthy: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            stop: stop_rx,
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
        let monitor_common = Arc::clone(&common);
        threads.push(spawn("herald-store-monitor".into(), move || {
            monitor_loop(&monitor_common, on_ready.as_ref())
        }));
        StorePool {
            common,
            general,
            hashing,
            threads: std::sync::Mutex::new(threads),
            stop: std::sync::Mutex::new(Some(stop)),
        }
    }

    /// Runs `body` on a new named thread with its own store connection; the thread is joined at
    /// [`StorePool::shutdown`]. It takes its jobs with [`Worker::next`], so that it ends once the
    /// pool stops and its queue is empty.
    pub fn spawn(&self, name: String, body: impl FnOnce(Worker) + Send + 'static) {
        let worker = Worker::new(Arc::clone(&self.common));
        let handle = spawn(name, move || body(worker));
        self.threads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(handle);
    }

    /// Counts a job refused because its queue was full (for queues kept outside the pool).
    pub fn count_rejection(&self) {
        self.common
            .metrics
            .store_queue_rejections
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Queues without waiting; a full (or closed) queue is counted and refused.
    pub fn offer<T>(&self, queue: &Sender<T>, item: T) -> Result<(), Busy> {
        queue.try_send(item).map_err(|_| {
            self.count_rejection();
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

    /// Whether the store answered the last ping and the schema is in place.
    pub fn is_up(&self) -> bool {
        self.common.ready.load(Ordering::Acquire) && self.common.healthy.load(Ordering::Acquire)
    }

    /// Jobs waiting in the pool's own queues.
    pub fn queue_depth(&self) -> usize {
        self.general.len() + self.hashing.len()
    }

    /// Lets queued work finish, then joins every thread (bounded by `deadline`).
    pub fn shutdown(&self, deadline: Instant) {
        drop(
            self.stop
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
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

fn general_loop(rx: Receiver<Job>, mut worker: Worker) {
    while let Some(job) = worker.next(&rx) {
        job(&mut worker);
    }
}

/// Migrates (and runs `on_ready`) once the store answers, then pings it every second.
fn monitor_loop(common: &Common, on_ready: Option<&OnReady>) {
    let mut db: Option<Box<dyn Backend>> = None;
    let mut last_error = String::new();
    while !common.stopping() {
        let result = match db.as_mut() {
            Some(conn) => conn.ping(),
            None => common.url.open().and_then(|mut conn| {
                if !common.ready.load(Ordering::Acquire) {
                    conn.migrate()?;
                    if let Some(hook) = on_ready {
                        hook(conn.as_mut())?;
                    }
                    log::info!("store {} migrated and ready", common.url);
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
                        log::info!("store {} is reachable again", common.url);
                    }
                }
                last_error.clear();
            }
            Err(e) => {
                db = None;
                common.healthy.store(false, Ordering::Release);
                let why = e.to_string();
                if why != last_error {
                    log::error!("store {} is down: {why}", common.url);
                    last_error = why;
                }
            }
        }
        // A second, or until the pool stops (the channel disconnects).
        let _ = common.stop.recv_timeout(Duration::from_secs(1));
    }
}
