//! The two Redis threads of a node: the publisher and the subscriber. Blocking I/O with bounded
//! timeouts; every failure drops the connection and reconnects with backoff.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use redis::{Client, Connection, RedisResult};

use super::wire::{self, Incoming, Outgoing};
use super::{LinkState, Notice, Queued};
use crate::bus::{Bus, InterestChange, Topic};
use crate::metrics::Metrics;

/// Bound on connecting to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound on one command's round trip (a pipeline of PUBLISHes, a SUBSCRIBE, a PING).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the subscriber blocks reading before it looks at interest changes again.
const READ_TICK: Duration = Duration::from_millis(20);
/// A subscriber connection silent this long is PINGed, so that a dead peer is noticed.
const PING_AFTER: Duration = Duration::from_secs(1);
/// Most PUBLISHes in one pipeline.
const MAX_PIPELINE: usize = 1024;
/// Most channels in one SUBSCRIBE or UNSUBSCRIBE.
const MAX_CHANNELS_PER_COMMAND: usize = 1024;
/// Messages read in a row before interest changes are looked at again.
const MAX_READS_PER_PASS: usize = 1024;

/// Reconnect delays: 100 ms doubling up to 2 s.
struct Backoff {
    delay: Duration,
    next: Instant,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(2);

    fn new() -> Backoff {
        Backoff {
            delay: Self::FIRST,
            next: Instant::now(),
        }
    }

    fn due(&self) -> bool {
        Instant::now() >= self.next
    }

    fn failed(&mut self) {
        self.next = Instant::now() + self.delay;
        self.delay = (self.delay * 2).min(Self::MAX);
    }

    fn reset(&mut self) {
        self.delay = Self::FIRST;
        self.next = Instant::now();
    }
}

fn connect(client: &Client) -> RedisResult<Connection> {
    let con = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    con.set_read_timeout(Some(COMMAND_TIMEOUT))?;
    con.set_write_timeout(Some(COMMAND_TIMEOUT))?;
    Ok(con)
}

/// The publisher thread.
pub(super) struct PublisherLoop {
    pub client: Client,
    pub url: String,
    pub queue: Receiver<Queued>,
    pub state: Arc<LinkState>,
    pub metrics: Arc<Metrics>,
    pub stop: Arc<AtomicBool>,
}

impl PublisherLoop {
    pub fn run(self) {
        let mut con: Option<Connection> = None;
        let mut backoff = Backoff::new();
        let mut down_since: Option<Instant> = None;
        loop {
            if con.is_none() && backoff.due() {
                match connect(&self.client) {
                    Ok(c) => {
                        con = Some(c);
                        backoff.reset();
                        self.state.set_publishing(true, &self.metrics);
                        if let Some(since) = down_since.take() {
                            log::info!(
                                "cluster: publishing to redis {} again after {:.1} s",
                                self.url,
                                since.elapsed().as_secs_f64()
                            );
                        }
                    }
                    Err(e) => {
                        backoff.failed();
                        self.state.set_publishing(false, &self.metrics);
                        if down_since.is_none() {
                            down_since = Some(Instant::now());
                            log::warn!(
                                "cluster: cannot publish to redis {} ({e}); committed messages reach the other \
                                 nodes through the store meanwhile; reconnecting with backoff",
                                self.url
                            );
                        }
                    }
                }
            }
            let first = match self.queue.recv_timeout(Duration::from_millis(100)) {
                Ok(batch) => batch,
                Err(RecvTimeoutError::Timeout) if self.stop.load(Ordering::Acquire) => return,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut confirms: Vec<Sender<bool>> = first.confirm.into_iter().collect();
            let mut outgoing: Vec<Outgoing> = first.outgoing;
            while outgoing.len() < MAX_PIPELINE {
                match self.queue.try_recv() {
                    Ok(more) => {
                        outgoing.extend(more.outgoing);
                        confirms.extend(more.confirm);
                    }
                    Err(_) => break,
                }
            }
            let count = outgoing.len() as u64;
            let Some(c) = con.as_mut() else {
                self.metrics
                    .cluster_publish_failures
                    .fetch_add(count, Ordering::Relaxed);
                answer(&confirms, false);
                continue;
            };
            let mut pipe = redis::pipe();
            for o in &outgoing {
                pipe.cmd("PUBLISH").arg(&o.channel).arg(&o.payload).ignore();
            }
            match pipe.query::<()>(c) {
                Ok(()) => {
                    self.metrics.cluster_publishes.fetch_add(count, Ordering::Relaxed);
                    self.metrics.cluster_publish_round_trips.fetch_add(1, Ordering::Relaxed);
                    answer(&confirms, true);
                }
                Err(e) => {
                    self.metrics
                        .cluster_publish_failures
                        .fetch_add(count, Ordering::Relaxed);
                    answer(&confirms, false);
                    con = None;
                    backoff.failed();
                    self.state.set_publishing(false, &self.metrics);
                    down_since = Some(Instant::now());
                    log::warn!(
                        "cluster: publishing {count} batch(es) to redis {} failed ({e}); they are committed and \
                         reach the other nodes through the store; reconnecting with backoff",
                        self.url
                    );
                }
            }
        }
    }
}

/// Tells the callers waiting for a pipeline whether Redis answered it (one may have stopped
/// waiting: nothing to tell it then).
fn answer(confirms: &[Sender<bool>], published: bool) {
    for confirm in confirms {
        let _ = confirm.try_send(published);
    }
}

/// The subscriber thread.
pub(super) struct SubscriberLoop {
    pub client: Client,
    pub url: String,
    pub node: Arc<str>,
    pub bus: Arc<Bus>,
    pub changes: Receiver<InterestChange>,
    pub notices: Sender<Notice>,
    pub state: Arc<LinkState>,
    pub metrics: Arc<Metrics>,
    pub stop: Arc<AtomicBool>,
}

/// Why the subscriber left a connection.
enum Left {
    Stopped,
    Failed(redis::RedisError),
}

impl From<redis::RedisError> for Left {
    fn from(e: redis::RedisError) -> Left {
        Left::Failed(e)
    }
}

impl SubscriberLoop {
    pub fn run(self) {
        // The node's interest, as forwarded by the sync thread: what should be subscribed.
        let mut wanted: HashSet<Topic> = HashSet::new();
        let mut backoff = Backoff::new();
        let mut down_since: Option<Instant> = Some(Instant::now());
        let mut warned = false;
        while !self.stop.load(Ordering::Acquire) {
            while let Ok(change) = self.changes.try_recv() {
                apply(&mut wanted, change);
            }
            if !backoff.due() {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            let mut con = match connect(&self.client) {
                Ok(con) => con,
                Err(e) => {
                    backoff.failed();
                    self.state.set_receiving(false, &self.metrics);
                    if !warned {
                        warned = true;
                        log::warn!(
                            "cluster: redis {} is unreachable ({e}): /health says DEGRADED, and rooms and users \
                             with listeners here are polled from the store until it is back; reconnecting with backoff",
                            self.url
                        );
                    }
                    continue;
                }
            };
            backoff.reset();
            match self.serve(&mut con, &mut wanted, &mut down_since) {
                Left::Stopped => return,
                Left::Failed(e) => {
                    self.state.set_receiving(false, &self.metrics);
                    down_since = Some(Instant::now());
                    warned = true;
                    backoff.failed();
                    log::warn!(
                        "cluster: lost the redis subscription to {} ({e}): /health says DEGRADED, polling the \
                         store meanwhile; reconnecting with backoff",
                        self.url
                    );
                }
            }
        }
        self.state.set_receiving(false, &self.metrics);
    }

    /// Subscribes to everything wanted, then follows interest changes and hands incoming
    /// messages to the bus, until the connection fails or the node stops.
    fn serve(&self, con: &mut Connection, wanted: &mut HashSet<Topic>, down_since: &mut Option<Instant>) -> Left {
        let mut ps = con.as_pubsub();
        while let Ok(change) = self.changes.try_recv() {
            apply(wanted, change);
        }
        let all: Vec<Topic> = wanted.iter().cloned().collect();
        if let Err(e) = subscribe(&mut ps, &all, true) {
            return Left::Failed(e);
        }
        let mut subscribed: HashSet<Topic> = all.into_iter().collect();
        self.state.set_receiving(true, &self.metrics);
        let _ = self.notices.send(Notice::Up);
        match down_since.take() {
            Some(since) if since.elapsed() > Duration::from_secs(1) => log::info!(
                "cluster: subscribed to redis {} again ({} channels) after {:.1} s; closing the gap from the store",
                self.url,
                subscribed.len(),
                since.elapsed().as_secs_f64()
            ),
            _ => log::info!(
                "cluster: subscribed to redis {} ({} channels)",
                self.url,
                subscribed.len()
            ),
        }
        match self.follow(&mut ps, wanted, &mut subscribed) {
            Ok(()) => Left::Stopped,
            Err(e) => Left::Failed(e),
        }
    }

    fn follow(
        &self,
        ps: &mut redis::PubSub<'_>,
        wanted: &mut HashSet<Topic>,
        subscribed: &mut HashSet<Topic>,
    ) -> RedisResult<()> {
        ps.set_read_timeout(Some(READ_TICK))?;
        let mut last_traffic = Instant::now();
        loop {
            if self.stop.load(Ordering::Acquire) {
                return Ok(());
            }
            let mut touched = Vec::new();
            while let Ok(change) = self.changes.try_recv() {
                touched.push(match &change {
                    InterestChange::Gained(t) | InterestChange::Lost(t) => t.clone(),
                });
                apply(wanted, change);
            }
            if !touched.is_empty() {
                let gained: Vec<Topic> = touched
                    .iter()
                    .filter(|t| wanted.contains(*t) && !subscribed.contains(*t))
                    .cloned()
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .collect();
                let lost: Vec<Topic> = touched
                    .iter()
                    .filter(|t| !wanted.contains(*t) && subscribed.contains(*t))
                    .cloned()
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .collect();
                ps.set_read_timeout(Some(COMMAND_TIMEOUT))?;
                subscribe(ps, &lost, false)?;
                subscribe(ps, &gained, true)?;
                ps.set_read_timeout(Some(READ_TICK))?;
                for t in &lost {
                    subscribed.remove(t);
                }
                subscribed.extend(gained.iter().cloned());
                if !gained.is_empty() {
                    let _ = self.notices.send(Notice::Subscribed(gained));
                }
                last_traffic = Instant::now();
            }
            for _ in 0..MAX_READS_PER_PASS {
                match ps.get_message() {
                    Ok(msg) => {
                        last_traffic = Instant::now();
                        self.on_message(msg.get_channel_name(), msg.get_payload_bytes());
                    }
                    Err(e) if e.is_timeout() => break,
                    Err(e) => return Err(e),
                }
            }
            if last_traffic.elapsed() >= PING_AFTER {
                ps.set_read_timeout(Some(COMMAND_TIMEOUT))?;
                ps.ping::<redis::Value>()?;
                ps.set_read_timeout(Some(READ_TICK))?;
                last_traffic = Instant::now();
            }
        }
    }

    fn on_message(&self, channel: &str, payload: &[u8]) {
        match wire::decode(channel, payload, &self.node) {
            Ok(Incoming::Chat(events)) => {
                self.metrics
                    .cluster_events_received
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
                self.bus.remote_chat(events);
            }
            Ok(Incoming::Notifications(events)) => {
                self.metrics
                    .cluster_events_received
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
                self.bus.remote_notifications(events);
            }
            Ok(Incoming::Membership(event)) => {
                self.metrics.cluster_events_received.fetch_add(1, Ordering::Relaxed);
                self.bus.remote_membership(vec![event]);
            }
            Ok(Incoming::Own) => {}
            Ok(Incoming::Unknown(kind)) => log::debug!("cluster: skipped a {kind:?} event on {channel}"),
            Err(e) => {
                let bad = self.metrics.cluster_bad_payloads.fetch_add(1, Ordering::Relaxed);
                if bad.is_multiple_of(1000) {
                    log::warn!(
                        "cluster: refused a payload on {channel}: {e} ({} refused so far; the store fills the gap)",
                        bad + 1
                    );
                }
            }
        }
    }
}

fn apply(wanted: &mut HashSet<Topic>, change: InterestChange) {
    match change {
        InterestChange::Gained(t) => {
            wanted.insert(t);
        }
        InterestChange::Lost(t) => {
            wanted.remove(&t);
        }
    }
}

/// SUBSCRIBE (or UNSUBSCRIBE) the channels of `topics`, many per command.
fn subscribe(ps: &mut redis::PubSub<'_>, topics: &[Topic], on: bool) -> RedisResult<()> {
    for chunk in topics.chunks(MAX_CHANNELS_PER_COMMAND) {
        let channels: Vec<String> = chunk.iter().map(wire::channel).collect();
        if on {
            ps.subscribe(&channels)?;
        } else {
            ps.unsubscribe(&channels)?;
        }
    }
    Ok(())
}
