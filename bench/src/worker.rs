//! One event-loop thread: opens its share of connections at its share of the connect rate, drives them with mio,
//! and sends on the schedule the controller sets through [`Shared`].

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mio::{Events, Interest, Poll, Token};

use crate::cli::{Config, Scenario};
use crate::conn::{Connection, Ctx, Ended, Role};
use crate::endpoint::source_addr;
use crate::shared::{Counters, Shared, UNSET};
use crate::stats::{Histograms, SubscriberTrack};

/// Longest sleep in `poll`, so phase changes and stop are noticed promptly.
const MAX_POLL_NS: u64 = 50_000_000;
/// How often heart-beat deadlines are checked.
const HEARTBEAT_CHECK_NS: u64 = 200_000_000;
/// Most SENDs issued in one loop pass, so reads are not starved when the schedule is behind.
const MAX_SENDS_PER_PASS: u64 = 2_000;

/// What one connection of the run will be.
#[derive(Debug, Clone, Copy)]
pub enum Plan {
    /// Subscriber of a room (idle and fanout).
    Subscriber {
        /// Room index.
        room: usize,
    },
    /// Fan-out publisher with a global index.
    Publisher {
        /// Publisher index.
        index: usize,
    },
    /// Receipted sender to a room (persist).
    Sender {
        /// Room index.
        room: usize,
    },
}

/// A connection to open: its global index (for source address and user) and its plan.
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    /// Index among all connections of the run.
    pub global: usize,
    /// What it does.
    pub plan: Plan,
}

/// What a thread hands back at the end.
pub struct ThreadResult {
    /// Latency histograms.
    pub hist: Histograms,
    /// Every subscriber's record, including those that dropped.
    pub subscribers: Vec<SubscriberTrack>,
    /// Scheduled SENDs skipped because no sender could take them (none ready or windows full).
    pub unsent: u64,
}

struct Worker<'a> {
    ctx: Ctx<'a>,
    poll: Poll,
    plans: Vec<Planned>,
    conns: Vec<Option<Connection>>,
    senders: Vec<usize>,
    opened: usize,
    pending: usize,
    max_pending: usize,
    connect_rate: f64,
    send_rate: f64,
    ramp_start_ns: u64,
    scheduled: u64,
    /// How long after the publish start this thread's schedule begins (`--stagger`).
    send_offset_ns: u64,
    cursor: usize,
    unsent: u64,
    window_filled: bool,
    finished_subs: Vec<SubscriberTrack>,
}

/// Runs one thread's share of the connections until [`Shared::stop`] is set.
pub fn run(cfg: &Config, shared: &Shared, tokens: &[String], plans: Vec<Planned>) -> ThreadResult {
    let total = cfg.total_connections().max(1) as f64;
    let mine = plans.len() as f64;
    let senders: Vec<usize> = plans
        .iter()
        .enumerate()
        .filter(|(_, p)| !matches!(p.plan, Plan::Subscriber { .. }))
        .map(|(i, _)| i)
        .collect();
    let all_senders = match cfg.scenario {
        Scenario::Fanout => cfg.publishers,
        _ => cfg.connections,
    }
    .max(1) as f64;
    let poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            shared.note_error(format!("cannot create poller: {e}"));
            shared.counters.failed.fetch_add(plans.len() as u64, Ordering::Relaxed);
            return ThreadResult {
                hist: Histograms::new(),
                subscribers: Vec::new(),
                unsent: 0,
            };
        }
    };
    let send_offset_ns = stagger_offset_ns(cfg, &plans);
    let mut worker = Worker {
        ctx: Ctx::new(cfg, shared, tokens),
        poll,
        conns: (0..plans.len()).map(|_| None).collect(),
        plans,
        send_rate: cfg.rate * senders.len() as f64 / all_senders,
        senders,
        opened: 0,
        pending: 0,
        max_pending: (cfg.max_pending as f64 * mine / total).ceil().max(1.0) as usize,
        connect_rate: cfg.connect_rate * mine / total,
        ramp_start_ns: shared.now_ns(),
        scheduled: 0,
        send_offset_ns,
        cursor: 0,
        unsent: 0,
        window_filled: false,
        finished_subs: Vec::new(),
    };
    worker.event_loop();
    worker.finish()
}

/// With `--stagger`, a thread's sends begin `i / rate` seconds into the window, `i` being the lowest index of its
/// publishers: with one publisher per thread (or publishers dealt round-robin to threads), the SENDs of all threads
/// interleave evenly instead of leaving together.
fn stagger_offset_ns(cfg: &Config, plans: &[Planned]) -> u64 {
    if !cfg.stagger || cfg.rate <= 0.0 {
        return 0;
    }
    let first = plans
        .iter()
        .filter_map(|p| match p.plan {
            Plan::Publisher { index } => Some(index),
            _ => None,
        })
        .min();
    first.map_or(0, |i| (i as f64 / cfg.rate * 1e9) as u64)
}

impl Worker<'_> {
    fn event_loop(&mut self) {
        let mut events = Events::with_capacity(1024);
        let mut next_heartbeat_ns = 0;
        while !self.ctx.shared.stop.load(Ordering::Relaxed) {
            let now = self.ctx.shared.now_ns();
            self.open_due(now);
            let send_wait = self.send_due(now);
            if now >= next_heartbeat_ns {
                self.heartbeats(now);
                next_heartbeat_ns = now + HEARTBEAT_CHECK_NS;
            }
            let ramp_wait = self.ramp_wait(now);
            let wait = send_wait.min(ramp_wait).min(MAX_POLL_NS);
            match self.poll.poll(&mut events, Some(Duration::from_nanos(wait))) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.ctx.shared.note_error(format!("poll failed: {e}"));
                    return;
                }
            }
            for event in events.iter() {
                let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                self.on_event(event.token().0, readable, event.is_writable());
            }
        }
    }

    fn on_event(&mut self, idx: usize, readable: bool, writable: bool) {
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let was_pending = conn.is_pending();
        let result = conn.on_event(&mut self.ctx, readable, writable);
        if was_pending && (result.is_err() || conn.is_ready()) {
            self.pending = self.pending.saturating_sub(1);
        }
        let result = match result {
            Ok(()) if self.unthrottled_persist() && self.publishing(self.ctx.shared.now_ns()) => self.fill_window(idx),
            other => other,
        };
        if let Err(ended) = result {
            self.close(idx, ended);
        }
    }

    fn unthrottled_persist(&self) -> bool {
        self.ctx.cfg.scenario == Scenario::Persist && self.ctx.cfg.rate <= 0.0
    }

    fn publishing(&self, now: u64) -> bool {
        let start = self.ctx.shared.publish_start_ns.load(Ordering::Relaxed);
        let end = self.ctx.shared.publish_end_ns.load(Ordering::Relaxed);
        start != UNSET && now >= start && now < end
    }

    fn fill_window(&mut self, idx: usize) -> Result<(), Ended> {
        let window = self.ctx.cfg.window;
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return Ok(());
        };
        while conn.can_send(window) {
            conn.send_next(&mut self.ctx)?;
        }
        Ok(())
    }

    fn open_due(&mut self, now: u64) {
        if self.ctx.shared.stop_ramp.load(Ordering::Relaxed) {
            return;
        }
        let elapsed = now.saturating_sub(self.ramp_start_ns) as f64 / 1e9;
        let allowed = (elapsed * self.connect_rate) as usize + 1;
        while self.opened < self.plans.len() && self.opened < allowed && self.pending < self.max_pending {
            let idx = self.opened;
            self.opened += 1;
            let planned = self.plans[idx];
            Counters::bump(&self.ctx.shared.counters.attempted);
            match self.open(idx, planned) {
                Ok(conn) => {
                    self.conns[idx] = Some(conn);
                    self.pending += 1;
                }
                Err(e) => {
                    Counters::bump(&self.ctx.shared.counters.failed);
                    self.ctx.shared.note_error(format!("connect: {e}"));
                }
            }
        }
    }

    fn open(&mut self, idx: usize, planned: Planned) -> std::io::Result<Connection> {
        let cfg = self.ctx.cfg;
        let role = match planned.plan {
            Plan::Subscriber { room } => Role::Subscriber(SubscriberTrack::new(room, cfg.publishers)),
            Plan::Publisher { index } => Role::Publisher { index, next_msg: 0 },
            Plan::Sender { room } => Role::Sender {
                room,
                next_receipt: 0,
                outstanding: VecDeque::new(),
            },
        };
        let source = source_addr(planned.global, cfg.sources);
        let mut conn = Connection::open(
            cfg,
            source,
            role,
            planned.global % cfg.users,
            planned.global,
            planned.global,
        )?;
        self.poll
            .registry()
            .register(conn.stream_mut(), Token(idx), Interest::READABLE | Interest::WRITABLE)?;
        Ok(conn)
    }

    fn ramp_wait(&self, now: u64) -> u64 {
        if self.opened >= self.plans.len() || self.ctx.shared.stop_ramp.load(Ordering::Relaxed) {
            return MAX_POLL_NS;
        }
        if self.pending >= self.max_pending {
            return MAX_POLL_NS;
        }
        let next = self.ramp_start_ns + (self.opened as f64 / self.connect_rate * 1e9) as u64;
        next.saturating_sub(now)
    }

    /// Issues the SENDs due by `now`; returns how long until the next one is due.
    fn send_due(&mut self, now: u64) -> u64 {
        if !self.publishing(now) || self.senders.is_empty() {
            return MAX_POLL_NS;
        }
        if self.unthrottled_persist() {
            if !self.window_filled {
                self.window_filled = true;
                for i in 0..self.senders.len() {
                    let idx = self.senders[i];
                    if let Err(ended) = self.fill_window(idx) {
                        self.close(idx, ended);
                    }
                }
            }
            return MAX_POLL_NS;
        }
        let start = self.ctx.shared.publish_start_ns.load(Ordering::Relaxed) + self.send_offset_ns;
        if now < start {
            return start - now;
        }
        let due = ((now - start) as f64 / 1e9 * self.send_rate) as u64;
        let mut this_pass = 0;
        while self.scheduled < due && this_pass < MAX_SENDS_PER_PASS {
            self.scheduled += 1;
            this_pass += 1;
            self.send_one();
        }
        if self.scheduled < due {
            return 0;
        }
        let next = start + ((self.scheduled + 1) as f64 / self.send_rate * 1e9) as u64;
        next.saturating_sub(now)
    }

    /// Sends one message from the next sender that can take it, round-robin.
    fn send_one(&mut self) {
        let window = self.ctx.cfg.window;
        for _ in 0..self.senders.len() {
            let idx = self.senders[self.cursor % self.senders.len()];
            self.cursor = self.cursor.wrapping_add(1);
            let Some(conn) = self.conns[idx].as_mut() else {
                continue;
            };
            if !conn.can_send(window) {
                continue;
            }
            if let Err(ended) = conn.send_next(&mut self.ctx) {
                self.close(idx, ended);
            }
            return;
        }
        self.unsent += 1;
    }

    fn heartbeats(&mut self, now: u64) {
        if self.ctx.cfg.heart_beat.0 == 0 {
            return;
        }
        for idx in 0..self.conns.len() {
            let Some(conn) = self.conns[idx].as_mut() else {
                continue;
            };
            if let Err(ended) = conn.heartbeat(&mut self.ctx, now) {
                self.close(idx, ended);
            }
        }
    }

    fn close(&mut self, idx: usize, ended: Ended) {
        let Some(mut conn) = self.conns.get_mut(idx).and_then(Option::take) else {
            return;
        };
        let _ = self.poll.registry().deregister(conn.stream_mut());
        let counters = &self.ctx.shared.counters;
        let was_established = matches!(ended, Ended::Dropped(_));
        match ended {
            Ended::Failed(why) => {
                Counters::bump(&counters.failed);
                self.ctx.shared.note_error(format!("connection failed: {why}"));
            }
            Ended::Dropped(why) => {
                Counters::bump(&counters.dropped);
                self.ctx.shared.note_error(format!("connection dropped: {why}"));
            }
        }
        if let (true, Role::Subscriber(track)) = (was_established, conn.role) {
            self.finished_subs.push(track);
        }
    }

    fn finish(self) -> ThreadResult {
        let mut subscribers = self.finished_subs;
        for conn in self.conns.into_iter().flatten().filter(Connection::is_ready) {
            if let Role::Subscriber(track) = conn.role {
                subscribers.push(track);
            }
        }
        ThreadResult {
            hist: self.ctx.hist,
            subscribers,
            unsent: self.unsent,
        }
    }
}
